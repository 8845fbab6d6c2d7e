"""Eigen-CAM: Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components",
IJCNN 2020 (arXiv 2008.00299), Sec. III."""

from __future__ import annotations

import torch

from ..core import Pass, register_method


@register_method("eigencam")
def eigencam(p: Pass, center: bool = False) -> torch.Tensor:
    """The projection of the target layer's activations on their first principal component:
    with O the activations as a (h*w) x C matrix and O = U S V^T its SVD, L = O v_1.
    The paper factorizes O itself (center=false); center=true subtracts the per-channel mean
    first (a PCA proper, as some implementations do).

    A singular vector's sign is arbitrary, so it is fixed here: the map is flipped when it
    correlates negatively with the mean activation over channels (ties: when its sum is
    negative). Class-agnostic: the same map for every target. Returns [B, T, h, w]."""
    batch, channels, height, width = p.activations.shape
    matrix = p.activations.flatten(2).transpose(1, 2).double()  # O: [B, hw, C]
    if center:
        matrix = matrix - matrix.mean(dim=1, keepdim=True)
    # O v_1 from the smaller Gram matrix: v_1 is the top eigenvector of O^T O (C x C), and
    # O v_1 = s_1 u_1 with u_1, s_1^2 the top eigenpair of O O^T (hw x hw). Same projection as a
    # full SVD of O (up to sign), at a fraction of its cost.
    if height * width <= channels:
        eigenvalues, eigenvectors = torch.linalg.eigh(matrix @ matrix.transpose(1, 2))
        projection = eigenvectors[:, :, -1] * eigenvalues[:, -1:].clamp(min=0).sqrt()  # [B, hw]
    else:
        _, eigenvectors = torch.linalg.eigh(matrix.transpose(1, 2) @ matrix)
        projection = matrix @ eigenvectors[:, :, -1:]  # [B, hw, 1]
        projection = projection[..., 0]
    mean_act = p.activations.flatten(2).mean(dim=1).double()  # [B, hw]
    covariance = ((projection - projection.mean(1, keepdim=True)) * (mean_act - mean_act.mean(1, keepdim=True))).sum(1)
    fallback = torch.where(projection.sum(1) < 0, -1.0, 1.0).to(projection)
    sign = torch.where(covariance != 0, torch.sign(covariance), fallback)
    maps = (projection * sign[:, None]).to(p.activations.dtype).view(batch, 1, height, width)
    return maps.expand(batch, p.targets.shape[1], height, width)

"""Batched resampling shared by the geometric ops: one ``affine_grid`` + ``grid_sample``.

Matrices are written in pixel coordinates (pixel centres at integers, x to the right, y
down) and map *output* pixels to the *input* pixels they read from; :func:`warp` converts
them to the normalised form ``affine_grid`` expects, so crops, rotations and affine maps of a
whole batch, each sample with its own matrix, are a single resampling call on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bioaug.augment import native

#: protocol name → grid_sample padding_mode
PADDING = {"constant": "zeros", "reflect": "reflection", "border": "border"}


def _to_normalised(size_in: tuple[int, int], size_out: tuple[int, int],
                   matrix: Tensor) -> Tensor:
    """Pixel-space ``(B, 2, 3)`` output→input maps as ``affine_grid`` thetas (align_corners=False)."""
    (h_in, w_in), (h_out, w_out) = size_in, size_out
    dt, dev = matrix.dtype, matrix.device
    # normalised output coords u -> output pixels x: x = (W/2) u + (W-1)/2
    denorm_out = torch.tensor([[w_out / 2, 0, (w_out - 1) / 2],
                               [0, h_out / 2, (h_out - 1) / 2],
                               [0, 0, 1]], dtype=dt, device=dev)
    # input pixels x -> normalised input coords: u = (2x + 1)/W - 1
    norm_in = torch.tensor([[2 / w_in, 0, 1 / w_in - 1],
                            [0, 2 / h_in, 1 / h_in - 1],
                            [0, 0, 1]], dtype=dt, device=dev)
    bottom = torch.tensor([0, 0, 1], dtype=dt, device=dev).expand(matrix.shape[0], 1, 3)
    full = torch.cat([matrix, bottom], dim=1)
    return (norm_in @ full @ denorm_out)[:, :2, :]


def warp(x: Tensor, matrix: Tensor, size_out: tuple[int, int], *, mode: str = "bilinear",
         padding: str = "reflect", fill: float = 0.0, out: Tensor | None = None) -> Tensor:
    """Resample ``x`` (B, C, H, W) through per-sample pixel-space matrices ``(B, 2, 3)``.

    ``padding`` is ``constant`` (value ``fill``), ``reflect`` or ``border``. ``out``, a
    contiguous ``(B, C, *size_out)`` tensor, receives the result when the CPU's separable
    path is taken (check the returned tensor: other paths allocate their own). This is the
    torch code; the compiled CPU kernel of axis-aligned maps is :func:`warp_views`.
    """
    if mode == "bilinear" and padding == "border" and x.device.type == "cpu":
        aligned = _axis_aligned(matrix, size_out)
        if aligned is not None:
            return _separable_warp(x, matrix.to(torch.float32), size_out, aligned, out)
    theta = _to_normalised((x.shape[2], x.shape[3]), size_out, matrix.to(x.dtype))
    grid = affine_grid(theta, size_out)
    if padding == "constant" and fill != 0.0:
        return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros",
                             align_corners=False) + fill
    return F.grid_sample(x, grid, mode=mode, padding_mode=PADDING[padding], align_corners=False)


def _axis_aligned(matrix: Tensor, size_out: tuple[int, int]) -> Tensor | None:
    """For matrices that only scale, flip, translate and (for square outputs) swap the axes
    — crops combined with quarter turns and flips — the ``(B,)`` bool "axes swapped" flags;
    ``None`` for any other batch (a rotation by another angle, a shear)."""
    m = matrix
    straight = (m[:, 0, 1] == 0) & (m[:, 1, 0] == 0)
    swapped = (m[:, 0, 0] == 0) & (m[:, 1, 1] == 0) & ~straight
    if not bool((straight | swapped).all()):
        return None
    if size_out[0] != size_out[1] and bool(swapped.any()):
        return None
    return swapped


def _taps(scale: Tensor, offset: Tensor, n_out: int, n_in: int) -> tuple[Tensor, Tensor, Tensor]:
    """Linear-interpolation taps along one axis: input coordinate ``scale·i + offset`` of each
    output index ``i``, clamped to the border; ``(B, n_out)`` lower/upper index and weight."""
    i = torch.arange(n_out, dtype=scale.dtype, device=scale.device)
    pos = (scale[:, None] * i + offset[:, None]).clamp_(0.0, n_in - 1.0)
    lower = pos.floor()
    weight = pos - lower
    lower = lower.long()
    return lower, (lower + 1).clamp_(max=n_in - 1), weight


#: Samples resampled together on the CPU path: the intermediates of a block stay a few MB,
#: small enough for the allocator to reuse from block to block (and warm in the cache).
WARP_BLOCK = 32


def _axis_taps(matrix: Tensor, swapped: Tensor, size_in: tuple[int, int],
               size_out: tuple[int, int]) -> tuple[Tensor, ...]:
    """Row and column taps of axis-aligned maps: ``(y0, y1, wy)`` ``(B, H_out)`` and
    ``(x0, x1, wx)`` ``(B, W_out)`` (see :func:`_taps`)."""
    (h, w), (h_out, w_out) = size_in, size_out
    m = matrix
    # straight: row i reads input row m11·i + m12, column j reads input column m00·j + m02;
    # swapped: out[i, j] = in[m10·j + m12, m01·i + m02], i.e. the transpose of a straight map
    row_scale = torch.where(swapped, m[:, 1, 0], m[:, 1, 1])
    col_scale = torch.where(swapped, m[:, 0, 1], m[:, 0, 0])
    return (*_taps(row_scale, m[:, 1, 2], h_out, h), *_taps(col_scale, m[:, 0, 2], w_out, w))


def warp_views(x: Tensor, matrices: list[Tensor], size_out: tuple[int, int],
               out: Tensor) -> bool:
    """Crops, quarter turns and flips of one batch for several views at once by the
    compiled CPU kernel (:func:`bioaug.augment.native.warp`), reading each input plane once
    for all of them: view ``v`` (bilinear, border padding, per-sample matrices
    ``matrices[v]``) into ``out[v]`` of ``out`` ``(V, B, C, *size_out)`` (contiguous). The
    same numbers as :func:`warp` up to float rounding. Only for axis-aligned maps and
    tensors the kernel takes; returns whether it did the work (``False``: nothing was
    written; warp each view with :func:`warp`)."""
    if (not native.available(x) or not out.is_contiguous() or out.dtype != x.dtype
            or tuple(out.shape) != (len(matrices), *x.shape[:2], *size_out)):
        return False
    swapped = [s for m in matrices if (s := _axis_aligned(m, size_out)) is not None]
    if len(swapped) != len(matrices):
        return False
    size_in = (x.shape[2], x.shape[3])
    taps = [_axis_taps(m.to(torch.float32), s, size_in, size_out)
            for m, s in zip(matrices, swapped, strict=True)]
    y0, y1, wy, x0, x1, wx = (torch.stack(t) for t in zip(*taps, strict=True))
    native.warp(x, native.WarpTaps(y0, y1, wy, x0, x1, wx, torch.stack(swapped)), out)
    return True


def _separable_warp(x: Tensor, matrix: Tensor, size_out: tuple[int, int],
                    swapped: Tensor, out: Tensor | None = None) -> Tensor:
    """:func:`warp` (bilinear, border padding) for axis-aligned maps, as two 1-D passes.

    Bilinear weights of an axis-aligned map are a product of a row and a column weight, so
    the resampling is a row pass (whole input rows blended by ``embedding_bag``) followed by
    a column pass (a ``gather`` along the rows, blended): the same numbers as ``grid_sample``
    up to float rounding, at about half its cost on the CPU. A sample whose map swaps the
    axes (an odd number of quarter turns) is resampled with the roles of the axes exchanged
    and transposed at the end. The batch is resampled in blocks of :data:`WARP_BLOCK`
    samples written into the output, so that no intermediate is larger than a few MB: large
    short-lived blocks are what glibc ``malloc`` hands back to the system after every batch
    and has to fault in again for the next. The compiled kernel (:func:`warp_views`) does
    both passes per image plane instead.
    """
    b, c, h, w = x.shape
    h_out, w_out = size_out
    y0, y1, wy, x0, x1, wx = _axis_taps(matrix, swapped, (h, w), size_out)
    if out is None:
        out = torch.empty((b, c, h_out, w_out), dtype=x.dtype, device=x.device)
    # row pass: each output row is a weighted sum of two input rows — an embedding bag of
    # size two over the table of all input rows (rows of the block's planes)
    planes = (torch.arange(c, device=x.device) * h)[None, :, None]  # (1, C, 1)
    index = torch.stack([planes + y0[:, None, :], planes + y1[:, None, :]], dim=-1)
    wy = wy.to(x.dtype)
    weight = torch.stack([1.0 - wy, wy], dim=-1)[:, None].expand(b, c, h_out, 2)
    wx = wx.to(x.dtype)[:, None, None, :]
    for start in range(0, b, WARP_BLOCK):
        stop = min(b, start + WARP_BLOCK)
        n = stop - start
        # the block's own rows: plane offsets restart at 0 in each block
        rows = index[start:stop] + (torch.arange(n, device=x.device) * (c * h)).view(n, 1, 1, 1)
        blended = F.embedding_bag(rows.view(-1, 2), x[start:stop].reshape(n * c * h, w),
                                  per_sample_weights=weight[start:stop].reshape(-1, 2),
                                  mode="sum").view(n, c, h_out, w)
        shape = (n, c, h_out, w_out)
        block = out[start:stop]
        torch.gather(blended, 3, x0[start:stop, None, None, :].expand(shape), out=block)
        right = blended.gather(3, x1[start:stop, None, None, :].expand(shape))
        block.lerp_(right, wx[start:stop])
        turned = swapped[start:stop].nonzero().squeeze(1)
        if turned.numel():
            block.index_copy_(0, turned, block.index_select(0, turned).transpose(2, 3))
    return out


def affine_grid(theta: Tensor, size_out: tuple[int, int]) -> Tensor:
    """``F.affine_grid(theta, ..., align_corners=False)`` computed separably (faster on CPU)."""
    h, w = size_out
    dt, dev = theta.dtype, theta.device
    u = (torch.arange(w, dtype=dt, device=dev) * 2 + 1) / w - 1  # (W,)
    v = (torch.arange(h, dtype=dt, device=dev) * 2 + 1) / h - 1  # (H,)
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    grid = torch.empty(theta.shape[0], h, w, 2, dtype=dt, device=dev)
    torch.add(t[:, :, 0] * u[None, None, None, :], t[:, :, 1] * v[None, None, :, None]
              + t[:, :, 2], out=grid.permute(0, 3, 1, 2))
    return grid  # (B, H, W, 2), contiguous


def compose(first: Tensor, second: Tensor) -> Tensor:
    """Output→input maps of two ops in a row: ``first`` then ``second`` → one map."""
    bottom = torch.tensor([0, 0, 1], dtype=first.dtype, device=first.device)
    a = torch.cat([first, bottom.expand(first.shape[0], 1, 3)], dim=1)
    b = torch.cat([second, bottom.expand(second.shape[0], 1, 3)], dim=1)
    return (a @ b)[:, :2, :]


def identity(batch: int, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> Tensor:
    return torch.eye(2, 3, dtype=dtype, device=device).expand(batch, 2, 3).clone()


def box_matrix(boxes: Tensor, size_out: tuple[int, int]) -> Tensor:
    """Matrices reading boxes ``(B, 4) = (x0, y0, w, h)`` (pixel edges) into ``size_out``."""
    h_out, w_out = size_out
    x0, y0, w, h = boxes.unbind(1)
    sx, sy = w / w_out, h / h_out
    zero = torch.zeros_like(sx)
    row0 = torch.stack([sx, zero, x0 + 0.5 * sx - 0.5], dim=1)
    row1 = torch.stack([zero, sy, y0 + 0.5 * sy - 0.5], dim=1)
    return torch.stack([row0, row1], dim=1)


def centred_inverse(forward: Tensor, translate: Tensor, size: tuple[int, int]) -> Tensor:
    """Output→input matrices for forward linear maps ``(B, 2, 2)`` about the image centre.

    The forward map sends input pixel ``p`` to ``c + t + A (p - c)``; the returned matrix
    sends output pixel ``q`` to ``c + A⁻¹ (q - c - t)``.
    """
    h, w = size
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=forward.dtype, device=forward.device)
    a, b, c, d = forward[:, 0, 0], forward[:, 0, 1], forward[:, 1, 0], forward[:, 1, 1]
    det = a * d - b * c
    inv = torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1) / det[:, None, None]
    offset = centre - (inv @ (centre + translate).unsqueeze(2)).squeeze(2)
    return torch.cat([inv, offset.unsqueeze(2)], dim=2)


def rotation(angle_deg: Tensor) -> Tensor:
    """Forward ``(B, 2, 2)`` maps rotating the picture counter-clockwise (as displayed)."""
    a = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    # y points down, so a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]].
    return torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)


"""Median-Cut colour quantisation in torch, batched, equal to Pillow's
``Image.quantize(colors=K, method=Image.Quantize.MEDIANCUT)`` image by image (palette and indices).

Pillow's quantiser, restated (our own formulation of what it computes):

1. Histogram. Distinct colours with their pixel counts. An image with more than 65536 distinct
   colours is histogrammed on colours shifted right by ``s`` bits, the smallest ``s`` that leaves at
   most 65536 distinct ones (Pillow's hash key is injective on 8-bit colours, so nothing else
   merges); the cut works on those shifted colours.
2. Cut. Boxes sit in a binary max-heap keyed by pixel count. Until there are K boxes (K − 1 splits):
   take the heap's top; a box of a single (shifted) colour is dropped from the heap and stays a
   leaf; otherwise split it along the axis with the largest range weighted by (77, 150, 29) (the
   first axis on equal weighted ranges), at the largest value ``t`` whose pixels at or above it are
   more than half of the box: values ≥ t go to the first ("upper") child, values < t to the second;
   if that leaves the second child empty, only the box's lowest value goes to the second child.
   Both children are pushed, first then second. The heap is simulated exactly (Pillow's sift rules
   on equal counts: a pushed box stops below a parent of equal count; a sifted-down box keeps
   moving below children of equal count; of two equal children the first one is followed), since
   the order in which boxes of equal count are split changes the result. An image whose heap runs
   out (fewer distinct colours than K) ends with fewer boxes.
3. Palette. The leaves in depth-first order, upper child first, each the mean of its pixels' (not
   shifted) colours rounded half up.
4. Mapping. Each pixel goes to the palette entry nearest in squared RGB distance. On ties its own
   box's entry wins when it is one of the nearest; otherwise, of the nearest entries, the one whose
   colour is nearest to the own box's entry (then the lowest index) wins.

All images are cut together, one split per image per step, on the input's device. The host only
reads a few scalars: the most distinct colours an image has (once), whether any image still has a
box to split (once a step) and whether any colour needs the tie rule of the mapping (once).
"""

from __future__ import annotations


import torch

__all__ = ["median_cut_torch"]

MAX_HISTOGRAM_COLOURS = 65536
LUMINANCE_WEIGHTS = (77, 150, 29)
MAPPING_CHUNK_ELEMENTS = 1 << 23  # (images × colours × palette entries) per chunk of the mapping
# heap entries pack (pixel count << COUNT_SHIFT) | SINGLE (a box of one colour) | box id
BOX_MASK = (1 << 10) - 1  # box ids are below 2K − 1 <= 511
SINGLE = 1 << 10
COUNT_SHIFT = 11
NOT_COUNT = (1 << COUNT_SHIFT) - 1


def median_cut_torch(pixels: torch.Tensor, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Median-Cut quantisation of uint8 RGB ``pixels`` (N, H, W, 3) to ``num_colors`` (1..256) colours.

    Returns the palettes (N, K, 3) uint8 (rows past an image's number of colours are zero) and the
    colour indices (N, H, W) int64, as Pillow's ``quantize(colors=K, method=MEDIANCUT)`` gives them
    (``getpalette()[:3 * K]`` and ``np.asarray(paletted)``).
    """
    if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected uint8 pixels of shape (N, H, W, 3), got {tuple(pixels.shape)} {pixels.dtype}")
    if not 1 <= num_colors <= 256:
        raise ValueError(f"num_colors must be in 1..256, got {num_colors}")
    n, height, width, _ = pixels.shape
    device = pixels.device
    if n == 0 or height * width == 0:
        return (torch.zeros(n, num_colors, 3, dtype=torch.uint8, device=device),
                torch.zeros(n, height, width, dtype=torch.int64, device=device))
    return _median_cut(pixels.reshape(n, height * width, 3), num_colors, (n, height, width))


def _median_cut(colours: torch.Tensor, num_colors: int, shape: tuple[int, int, int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``median_cut_torch`` on (N, P, 3) uint8 ``colours``, indices shaped ``shape``."""
    n = colours.shape[0]
    shift = _histogram_shift(colours)
    distinct, counts, slot = _histogram(colours.to(torch.int64) if shift is None else
                                        colours.to(torch.int64) >> shift.view(n, 1, 1))
    box, position, leaves = _cut(distinct, counts, num_colors)
    entry = torch.where(counts > 0, position.gather(1, box), 0)  # each distinct colour's palette entry
    if shift is None:  # the cut's colours are the pixels' colours: work on distinct colours
        colours, weights = distinct.transpose(1, 2), counts
    else:
        colours, weights, entry = colours.to(torch.int64), torch.ones_like(slot), entry.gather(1, slot)
    palette = _box_means(colours, weights, entry, num_colors, leaves)
    index = _nearest(colours, palette, entry, leaves)
    if shift is None:
        index = index.gather(1, slot)
    return palette.to(torch.uint8), index.view(shape)


def _histogram_shift(colours: torch.Tensor) -> torch.Tensor | None:
    """(N,) bits each image's colours are shifted by before the cut; None (no shift) where no image
    can have more than 65536 colours."""
    n, count, _ = colours.shape
    if count <= MAX_HISTOGRAM_COLOURS:
        return None
    shift = torch.zeros(n, dtype=torch.int64, device=colours.device)
    wide = colours.to(torch.int64)
    for bits in range(8):
        codes = _code(wide >> bits).sort(1).values
        distinct = (codes[:, 1:] != codes[:, :-1]).sum(1) + 1
        shift += (distinct > MAX_HISTOGRAM_COLOURS).to(torch.int64)  # distinct counts fall as bits grow
    return shift


def _code(colours: torch.Tensor) -> torch.Tensor:
    return (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]


def _histogram(shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image's distinct (shifted) colours, padded to the most any image has: their channel
    values (N, 3, D) int64, their pixel counts (N, D) (0 for padding) and each pixel's colour (N, P)."""
    n, count, _ = shifted.shape
    device = shifted.device
    keys = _code(shifted) + (torch.arange(n, device=device).unsqueeze(1) << 24)
    unique, inverse, pixels = torch.unique(keys.flatten(), return_inverse=True, return_counts=True)
    image = unique >> 24
    per_image = torch.bincount(image, minlength=n)
    width = int(per_image.max())
    slot = torch.arange(unique.numel(), device=device) - (per_image.cumsum(0) - per_image)[image]
    codes = torch.zeros(n, width, dtype=torch.int64, device=device)
    codes[image, slot] = unique & 0xFFFFFF
    counts = torch.zeros(n, width, dtype=torch.int64, device=device)
    counts[image, slot] = pixels
    distinct = torch.stack([codes >> 16, (codes >> 8) & 0xFF, codes & 0xFF], 1)
    return distinct, counts, slot[inverse].view(n, count)


class _BoxHeap:
    """N binary max-heaps of boxes keyed by pixel count, with Pillow's sift rules on equal counts,
    as packed entries in slots 1..K. Column 0 holds a sentinel below every entry, column K + 1 takes
    the writes of images that sit an operation out."""

    def __init__(self, n: int, num_colors: int, device: torch.device):
        self.entries = torch.zeros(n, num_colors + 2, dtype=torch.int64, device=device)
        self.entries[:, 0] = -1
        self.size = torch.zeros(n, 1, dtype=torch.int64, device=device)
        self.discard = num_colors + 1
        self.parents = num_colors // 2  # the slots that can have a child
        self.first_child = torch.arange(2, 2 * self.parents + 2, 2, device=device)
        self.second_child = self.first_child + 1
        self.child = torch.zeros(n, num_colors + 1, dtype=torch.int64, device=device)
        self.root = torch.ones(n, 1, dtype=torch.int64, device=device)
        self.shifts = torch.arange(num_colors.bit_length() + 1, device=device)

    def push(self, entry: torch.Tensor, count: torch.Tensor, active: torch.Tensor, levels: int) -> None:
        """Adds ``entry`` (N, 1) of pixel count ``count`` to the heaps of the ``active`` (N, 1) images."""
        slot = self.size + 1
        self.size = self.size + active.to(torch.int64)
        # the entry climbs past the ancestors (nearest first) with a smaller count: a prefix, as
        # counts only grow towards the root; slot >> 0 is the slot each ancestor moves down into
        below = slot >> self.shifts[:levels]
        ancestors = below >> 1
        moving = self.entries.gather(1, ancestors)
        climbs = (moving < (count << COUNT_SHIFT)) & (ancestors > 0) & active
        self.entries.scatter_(1, torch.where(climbs, below, self.discard), moving)
        final = torch.where(active, slot >> climbs.sum(1, keepdim=True), self.discard)
        self.entries.scatter_(1, final, entry)

    def pop(self, active: torch.Tensor, levels: int) -> torch.Tensor:
        """Removes the top entry (N, 1) of the ``active`` (N, 1) images' heaps and returns it (the
        others get their top entry back too, left in place)."""
        entries = self.entries
        top = entries[:, 1:2].clone()
        last = entries.gather(1, self.size)
        self.size = self.size - active.to(torch.int64)
        # the path the last entry sinks along: from each slot to its child with the larger count
        # (the first child on equal counts), 0 where the slot has no child left
        size = self.size
        counts = entries >> COUNT_SHIFT
        first, second, parents = self.first_child, self.second_child, self.parents
        later = (counts[:, 2:2 * parents + 1:2] < counts[:, 3:2 * parents + 2:2]) & (second <= size)
        self.child[:, 1:parents + 1] = (first + later) * (first <= size)
        path = [self.root]
        for _ in range(levels):
            path.append(self.child.gather(1, path[-1]))
        path = torch.cat(path, 1)  # slot 1, then its descendants on the path; 0 past the bottom
        # the last entry sinks past the path's entries whose count is at least its own (they rise
        # a level): a prefix, as counts only fall along the path and the sentinel ends it
        moving = entries.gather(1, path[:, 1:])
        rises = (moving >= (last & ~NOT_COUNT)) & active
        entries.scatter_(1, torch.where(rises, path[:, :-1], self.discard), moving)
        final = torch.where(active, path.gather(1, rises.sum(1, keepdim=True)), self.discard)
        entries.scatter_(1, final, last)
        return top


def _cut(distinct: torch.Tensor, counts: torch.Tensor, num_colors: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The median cut of all images at once, one split per image per step.

    Returns each distinct colour's leaf box id (N, D), each box's depth-first position among the
    leaves (N, 2K + 1) and the number of leaves (N,). A box's bounds and its histogram along the
    split axis are computed when it leaves the heap.
    """
    n, _, width = distinct.shape
    device = distinct.device
    discard = 2 * num_colors  # box ids 0 .. 2K − 2 are used; this one takes discarded writes
    box = torch.where(counts > 0, 0, discard)  # padding sits in the discarded box
    position = torch.zeros(n, discard + 1, dtype=torch.int64, device=device)
    axis_order = torch.tensor([2, 1, 0], dtype=torch.int64, device=device)  # the first axis wins ties
    weights = torch.tensor(LUMINANCE_WEIGHTS, dtype=torch.int64, device=device) * 4
    narrow = distinct.to(torch.uint8)
    narrow_flipped = 255 - narrow

    heap = _BoxHeap(n, num_colors, device)
    colours = (counts > 0).sum(1, keepdim=True)
    pixels = counts.sum(1, keepdim=True)
    everyone = torch.ones(n, 1, dtype=torch.bool, device=device)
    heap.push((pixels << COUNT_SHIFT) | (colours == 1) * SINGLE, pixels, everyone, 1)
    # boxes of several colours in each heap: an image without any is finished (the boxes left
    # would leave the heap one by one, unsplit)
    splittable = (colours > 1).to(torch.int64)
    splits_left = torch.full((n, 1), num_colors - 1, dtype=torch.int64, device=device)
    next_id = torch.ones(n, 1, dtype=torch.int64, device=device)
    step = 0
    while True:
        active = (splits_left > 0) & (splittable > 0)  # (N, 1)
        if not bool(active.any()):
            break
        levels = min(step + 2, num_colors + 1).bit_length()  # the heap holds at most step + 1 boxes
        step += 1
        top = heap.pop(active, levels)
        active = active & ((top & SINGLE) == 0)  # a single-colour box leaves the heap unsplit
        chosen, total = top & BOX_MASK, top >> COUNT_SHIFT
        inside = box == torch.where(active, chosen, -1)
        members = inside.unsqueeze(1).to(torch.uint8)
        high = (narrow * members).amax(2).to(torch.int64)  # the box's bounds (N, 3)
        low = 255 - (narrow_flipped * members).amax(2).to(torch.int64)
        axis = ((high - low) * weights + axis_order).argmax(1, keepdim=True)
        value = distinct.gather(1, axis.unsqueeze(2).expand(-1, 1, width)).squeeze(1)  # (N, D)
        along = torch.zeros(n, 256, dtype=torch.int64, device=device).scatter_add_(1, value, counts * inside)
        under = along.cumsum(1) - along  # the box's pixels below each value of the axis
        threshold = (2 * under < total).sum(1, keepdim=True) - 1  # most pixels at or above it
        threshold = torch.maximum(threshold, low.gather(1, axis) + 1) * active
        upper_count = total - under.gather(1, threshold)
        # the box's colours at or above the threshold become box next_id, the others next_id + 1
        below = value < threshold
        box = torch.where(inside, next_id + below, box)
        lower_colours = (inside & below).sum(1, keepdim=True)
        upper_colours = inside.sum(1, keepdim=True) - lower_colours
        # depth-first order: the two children take the parent's place, the later leaves move on
        place = position.gather(1, chosen)
        position += active & (position > place)
        written = torch.where(active, next_id, discard)
        position.scatter_(1, torch.cat([written, written + active], 1), torch.cat([place, place + 1], 1))
        lower_count = total - upper_count
        upper = (upper_count << COUNT_SHIFT) | (upper_colours == 1) * SINGLE | next_id
        lower = (lower_count << COUNT_SHIFT) | (lower_colours == 1) * SINGLE | (next_id + 1)
        heap.push(upper, upper_count, active, levels + 1)
        heap.push(lower, lower_count, active, levels + 1)
        splittable += active * ((upper_colours > 1).to(torch.int64) + (lower_colours > 1).to(torch.int64) - 1)
        next_id = next_id + 2 * active
        splits_left = splits_left - active.to(torch.int64)
    return box, position, num_colors - splits_left.squeeze(1)


def _box_means(colours: torch.Tensor, weights: torch.Tensor, entry: torch.Tensor, num_colors: int,
               leaves: torch.Tensor) -> torch.Tensor:
    """(N, K, 3) int64: each leaf's mean colour rounded half up (``colours`` (N, M, 3) with pixel
    counts ``weights`` (N, M) in palette entries ``entry`` (N, M)); zero rows past the leaves."""
    n = colours.shape[0]
    sums = torch.zeros(n, num_colors, 3, dtype=torch.int64, device=colours.device)
    sums.scatter_add_(1, entry.unsqueeze(2).expand(-1, -1, 3), colours * weights.unsqueeze(2))
    counts = torch.zeros(n, num_colors, dtype=torch.int64, device=colours.device)
    counts.scatter_add_(1, entry, weights)
    counts = counts.unsqueeze(2)
    means = torch.div(2 * sums + counts, (2 * counts).clamp(min=1), rounding_mode="floor")
    used = torch.arange(num_colors, device=colours.device) < leaves.unsqueeze(1)
    return means * used.unsqueeze(2)


def _nearest(colours: torch.Tensor, palette: torch.Tensor, entry: torch.Tensor, leaves: torch.Tensor) -> torch.Tensor:
    """(N, M) int64: the palette entry of each of ``colours`` (N, M, 3) whose box's entry is
    ``entry`` (N, M), with the tie rules in the module docstring."""
    n, count, _ = colours.shape
    num_colors = palette.shape[1]
    device = colours.device
    # ‖p‖² − 2 x·p orders the entries as the squared distance ‖x − p‖² does; all are integers
    # below 2^20, exact in float32 with any matmul precision (8-bit inputs survive bf16 / tf32
    # rounding, accumulation is float32); unused entries are pushed out of reach
    pal = palette.to(torch.float32)
    unused = torch.arange(num_colors, device=device) >= leaves.unsqueeze(1)
    offset = pal.square().sum(2).masked_fill(unused, float(1 << 20)).unsqueeze(1)  # (N, 1, K)
    result = torch.empty_like(entry)
    contested = []
    chunk = max(1, MAPPING_CHUNK_ELEMENTS // max(1, n * num_colors))
    for start in range(0, count, chunk):
        own = entry[:, start:start + chunk].unsqueeze(2)
        distance = torch.baddbmm(offset, colours[:, start:start + chunk].to(torch.float32), pal.transpose(1, 2),
                                 alpha=-2)
        nearest, first = distance.min(2, keepdim=True)  # first: the nearest entry where it is unique
        own_distance = distance.gather(2, own)
        result[:, start:start + chunk] = torch.where(own_distance == nearest, own, first).squeeze(2)
        # several nearest entries, the own one not among them: the entry nearest the own one wins
        several = (distance == nearest).sum(2, keepdim=True) > 1
        contested.append((several & (own_distance != nearest)).squeeze(2))
    contested = torch.cat(contested, 1)
    if bool(contested.any()):
        image, item = contested.nonzero(as_tuple=True)
        pal_int = palette.to(torch.int64)
        own_colour = pal_int[image, entry[image, item]]  # (C, 3)
        between = (pal_int[image] - own_colour.unsqueeze(1)).square().sum(2)  # (C, K)
        distance = (pal_int[image] - colours[image, item].to(torch.int64).unsqueeze(1)).square().sum(2)
        distance = distance.masked_fill(unused[image], 1 << 40)
        order = between * num_colors + torch.arange(num_colors, device=device)
        order = torch.where(distance == distance.amin(1, keepdim=True), order, torch.iinfo(torch.int64).max)
        result[image, item] = order.argmin(1)
    return result

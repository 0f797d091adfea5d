"""The diffusion backend: InstructPix2Pix edits with DC3's warm and cold instructions.

The pipeline is diffusers' ``StableDiffusionInstructPix2PixPipeline`` loaded by hub id
(default ``timbrooks/instruct-pix2pix``, about 2.5 GB in fp16; needs the weights in the local
Hugging Face cache when offline) or from a local directory, with the Euler-ancestral
scheduler, text guidance 4 and fp16 on a GPU. Several images go through one pipeline call.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn.functional as F

from ..errors import CondensationError
from ..progress import ProgressFn, chunks, silent
from .prompts import COLD_STYLES, WARM_STYLES, instruction

DEFAULT_MODEL = "timbrooks/instruct-pix2pix"


@dataclass(frozen=True)
class DiffusionSettings:
    model: str = DEFAULT_MODEL
    steps: int = 20
    guidance: float = 4.0
    image_guidance: float = 1.5
    edit_size: int = 256  # images are resized to this (a multiple of 8) for editing
    batch_size: int = 8


def load_pipeline(model: str, device: torch.device):
    """The InstructPix2Pix pipeline from a hub id or a local directory, ready on ``device``."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    try:
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            model, dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, EnvironmentError) as error:
        raise CondensationError(
            f"Cannot load the InstructPix2Pix pipeline {model!r}: {error}. Pass a local directory "
            "(saved with save_pretrained or downloaded with `huggingface-cli download "
            "timbrooks/instruct-pix2pix`) as model=, or use backend='classical', which needs no weights."
        ) from None
    pipeline.scheduler = EulerAncestralDiscreteScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def draw_styles(n: int, generator: torch.Generator) -> tuple[list[str], list[str]]:
    """One warm and one cold style per image."""
    warm = torch.randint(len(WARM_STYLES), (n,), generator=generator).tolist()
    cold = torch.randint(len(COLD_STYLES), (n,), generator=generator).tolist()
    return [WARM_STYLES[i] for i in warm], [COLD_STYLES[i] for i in cold]


def edit(pipeline, images: torch.Tensor, styles: list[str], seeds: list[int], settings: DiffusionSettings) -> torch.Tensor:
    """One batched pipeline call: ``images`` (N, 3, H, W) in [0, 1] edited by ``styles``."""
    device = pipeline.device
    height, width = images.shape[-2:]
    resized = F.interpolate(images, size=(settings.edit_size, settings.edit_size), mode="bilinear",
                            align_corners=False, antialias=True)
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    output = pipeline(
        prompt=[instruction(style) for style in styles],
        image=resized.to(device),
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        image_guidance_scale=settings.image_guidance,
        generator=generators,
        output_type="pt",
    ).images
    output = output.float().cpu().clamp(0, 1)
    return F.interpolate(output, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def warm_and_cold(pipeline, images: torch.Tensor, generator: torch.Generator, settings: DiffusionSettings,
                  progress: ProgressFn = silent) -> tuple[torch.Tensor, torch.Tensor]:
    """(warm, cold) edits of every image; each pipeline call edits ``settings.batch_size``
    source images twice (warm and cold instructions together, 2 × batch_size edits)."""
    n = images.shape[0]
    warm_styles, cold_styles = draw_styles(n, generator)
    seeds = torch.randint(2**31 - 1, (2, n), generator=generator).tolist()
    warm, cold = [], []
    for start, stop in chunks(n, settings.batch_size):
        batch = images[start:stop]
        edited = edit(pipeline, torch.cat([batch, batch]), warm_styles[start:stop] + cold_styles[start:stop],
                      seeds[0][start:stop] + seeds[1][start:stop], settings)
        warm.append(edited[: len(batch)])
        cold.append(edited[len(batch):])
        progress(stop / n, f"{stop}/{n} images")
    return torch.cat(warm), torch.cat(cold)

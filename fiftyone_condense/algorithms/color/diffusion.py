"""The diffusion backend: InstructPix2Pix edits with DC3's warm and cold instructions.

The pipeline is diffusers' ``StableDiffusionInstructPix2PixPipeline`` loaded by hub id
(default ``timbrooks/instruct-pix2pix``, about 2.5 GB in fp16; needs the weights in the local
Hugging Face cache when offline) or from a local directory, run as DC3's reference runs it:
Euler-ancestral scheduler, text guidance 4, image guidance 1.5 and 100 steps (the pipeline's
defaults there), 256 px edits, fp16 on a GPU. Several images go through one pipeline call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CondensationError
from ..params import param
from ..progress import ProgressFn, chunks, silent
from .prompts import instruction

DEFAULT_MODEL = "timbrooks/instruct-pix2pix"


DIFFUSION_ONLY = {"backend": "diffusion"}  # the forms show these with the diffusion backend only


@dataclass(frozen=True)
class DiffusionSettings:
    """How images are edited: DC3's reference settings (``edit_size`` applies to both backends)."""

    model: str = param(DEFAULT_MODEL, "Hub id or local pipeline directory", label="Model", when=DIFFUSION_ONLY,
                       path="hub")
    steps: int = param(100, "Denoising steps per edit (DC3: 100)", label="Steps", min=1, when=DIFFUSION_ONLY)
    guidance: float = param(4.0, "How closely edits follow the instruction (DC3: 4)", label="Text guidance", min=0.0,
                            when=DIFFUSION_ONLY)
    image_guidance: float = param(1.5, "How closely edits follow the input image (DC3: 1.5)", label="Image guidance",
                                  min=0.0, when=DIFFUSION_ONLY)
    edit_size: int = param(256, "Images are edited and combined at this size (a multiple of 8; DC3: 256), then "
                           "resized back", label="Edit size", min=8)
    batch_size: int = param(8, "Images per pipeline call", label="Batch size", min=1, when=DIFFUSION_ONLY)


def load_pipeline(model: str, device: torch.device):
    """The InstructPix2Pix pipeline from a hub id or a local directory, ready on ``device``."""
    try:
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline
    except ImportError as error:  # diffusers, transformers and accelerate are the optional [diffusion] extra
        raise CondensationError(
            f"backend='diffusion' needs diffusers and transformers ({error}): "
            "pip install \"fiftyone-condense[diffusion]\", or use backend='classical', which needs neither."
        ) from None

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


def edit(pipeline, images: torch.Tensor, styles: list[str], seeds: list[int], settings: DiffusionSettings) -> torch.Tensor:
    """One batched pipeline call: ``images`` (N, 3, S, S) in [0, 1], at the edit size, edited by ``styles``."""
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    output = pipeline(
        prompt=[instruction(style) for style in styles],
        image=images.to(pipeline.device),
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        image_guidance_scale=settings.image_guidance,
        generator=generators,
        output_type="pt",
    ).images
    return output.float().cpu().clamp(0, 1)


def warm_and_cold(pipeline, images: torch.Tensor, warm_styles: list[str], cold_styles: list[str],
                  generator: torch.Generator, settings: DiffusionSettings,
                  progress: ProgressFn = silent) -> tuple[torch.Tensor, torch.Tensor]:
    """(warm, cold) edits of every image (at the edit size); each pipeline call edits
    ``settings.batch_size`` source images twice (warm and cold instructions together)."""
    n = images.shape[0]
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

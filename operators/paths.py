"""Paths from the App are confined: a file or folder named in a form must lie, once resolved, under a
folder this deployment allows, checked as the user types (the form flags it) and again at execution
(a client can call an operator without its form). The SDK is not confined: it runs as its user.

The allowed folders are ``$FIFTYONE_CONDENSE_ALLOWED_ROOTS`` (folders separated by ``os.pathsep``)
when set, else the dataset's media root (the deepest folder holding its own media), the folder beside
it where runs write by default, and the plugin's cache folder (only the cache folder when the media
root is the filesystem's root).
"""

from __future__ import annotations

import os
import re
from typing import Optional

import fiftyone as fo

import fiftyone_condense as fc
from fiftyone_condense.api import SYNTHETIC_TAG, cache_dir, media_root, output_root

ALLOWED_ROOTS_ENV = "FIFTYONE_CONDENSE_ALLOWED_ROOTS"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def allowed_roots(dataset: fo.Dataset) -> list[str]:
    """The resolved folders that paths from the App may lie under (see the module's docstring)."""
    setting = [root for root in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if root]
    if setting:
        return [os.path.realpath(root) for root in setting]
    source = dataset.match_tags(SYNTHETIC_TAG, bool=False)
    media = os.path.realpath(media_root(source))
    spread = os.path.dirname(media) == media  # media in unrelated folders: their common root is the disk's
    beside = [] if spread else [media, os.path.realpath(output_root(source))]
    return beside + [os.path.realpath(cache_dir())]


def confined(path: str, roots: list[str]) -> bool:
    """Whether ``path``, resolved (symlinks followed, ``..`` collapsed), is one of ``roots`` or lies under one."""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def is_hub_id(value: str) -> bool:
    """Whether ``value`` reads as a Hugging Face hub id (``owner/name``) rather than a local path."""
    return HUB_ID.fullmatch(value) is not None and ".." not in value and not os.path.exists(value)


def refusal(dataset: fo.Dataset, label: str, value: Optional[str], hub: bool = False) -> Optional[str]:
    """Why the App may not use ``value`` as a path (None: it may; empty means none given; ``hub``:
    the value may also be a hub id, loaded by id rather than from a path)."""
    if not value or (hub and is_hub_id(value)):
        return None
    roots = allowed_roots(dataset)
    if confined(value, roots):
        return None
    return (f"{label} {value!r} is outside the folders this server allows: {', '.join(roots) or 'none'}; "
            f"set {ALLOWED_ROOTS_ENV} to allow more")


def flag_path(ctx, prop, name: str, label: str, hub: bool = False) -> None:
    """Mark the form's ``name`` input invalid when its value is a path the App may not use."""
    message = refusal(ctx.dataset, label, ctx.params.get(name), hub)
    if message:
        prop.invalid, prop.error_message = True, message


def checked_path(ctx, name: str, label: str, hub: bool = False) -> Optional[str]:
    """The form's ``name`` value (None when empty), or a :class:`CondensationError` when the App may not use it."""
    value = ctx.params.get(name) or None
    message = refusal(ctx.dataset, label, value, hub)
    if message:
        raise fc.CondensationError(message)
    return value


OUTPUT_LABEL = "Output folder"


def output_dir_input(ctx, inputs) -> None:
    """Where the run writes its images (empty: beside the dataset's media), confined as above."""
    prop = inputs.str("output_dir", default=None, label=f"{OUTPUT_LABEL} (optional)",
                      description="The run's images go in <folder>/<run key>; empty: the folder beside the "
                                  "dataset's media. It must lie under the folders this server allows")
    flag_path(ctx, prop, "output_dir", OUTPUT_LABEL)


def output_dir_value(ctx) -> Optional[str]:
    """The SDK's ``output_dir`` from the form, checked again (a client may skip the form)."""
    return checked_path(ctx, "output_dir", OUTPUT_LABEL)

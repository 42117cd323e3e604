"""Training options by name, and how a run's three config sections are resolved from them.

``yolov3 train --epochs 30 --img-size 320`` and ``yolov3.train(data=..., epochs=30, img_size=320)``
share these names: each is the name of one field of ``ModelConfig`` / ``DataConfig`` /
``TrainConfig`` (``yolov3.config``), except ``model`` (``model.name``) and ``data`` (``data.path``).
``build_configs`` is the one place the sections are put together, for the command line and the API.
"""

from __future__ import annotations

import os
from typing import Any

from yolov3.config import (
    SECTIONS,
    TRAIN_OPTIONS,
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    check_sections,
    from_dict,
    load_yaml,
    nearest,
    upgrade_saved,
)
from yolov3.modelfile import read_checkpoint

OPTIONS = TRAIN_OPTIONS  # option name -> (section, field)


def resume_checkpoint(resume: str | os.PathLike) -> str:
    """``runs/NAME`` -> ``runs/NAME/weights/last.pt``; a ``.pt`` path as it is."""
    path = os.fspath(resume)
    return os.path.join(path, "weights", "last.pt") if os.path.isdir(path) else path


def build_configs(
    options: dict[str, Any],
    config: str | os.PathLike | dict[str, Any] | None = None,
    resume: str | os.PathLike | None = None,
) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The three sections: the resumed run's saved config (``resume``: a run folder or a ``.pt``), then
    ``config`` (a YAML file or its parsed mapping of ``model`` / ``data`` / ``train`` sections), then
    every option in ``options`` whose value is not None. An unknown option, section or key is an
    error naming it and the nearest valid one."""
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise ConfigError(f"unknown training option {unknown[0]!r}{nearest(unknown[0], OPTIONS)}; "
                          f"known: {', '.join(sorted(OPTIONS))}")  # fmt: skip
    sections: dict[str, dict[str, Any]] = {k: {} for k in SECTIONS}
    if resume:
        for section, values in upgrade_saved(
            read_checkpoint(resume_checkpoint(resume)).get("config", {})
        ).items():
            sections[section].update(values)
    if config is not None:
        doc = load_yaml(config) if not isinstance(config, dict) else config
        check_sections(doc, str(config) if not isinstance(config, dict) else "config")
        for section, values in doc.items():
            sections[section].update(values or {})
    for option, value in options.items():
        if value is not None:
            section, key = OPTIONS[option]
            sections[section][key] = value
    where = str(config) if isinstance(config, (str, os.PathLike)) else "config"
    return (
        from_dict(ModelConfig, sections["model"], f"{where}: model"),
        from_dict(DataConfig, sections["data"], f"{where}: data"),
        from_dict(TrainConfig, sections["train"], f"{where}: train"),
    )


__all__ = ["OPTIONS", "build_configs", "resume_checkpoint"]

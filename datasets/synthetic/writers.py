"""Write synthetic footage to disk: the demo detector's YOLO training set and the demo clip."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np

from anjian.datasets.synthetic.drawing import clear_static_layer_cache, render_scene
from anjian.datasets.synthetic.plant import PLANT_CAMERAS, PLANT_LOOP_S, plant_scene_spec
from anjian.datasets.synthetic.specs import CLASS_NAMES, SceneSpec, demo_scene_spec, random_scene_spec

__all__ = ["write_demo_video", "write_plant_footage", "write_scene_video", "write_training_set"]


def write_training_set(
    out_dir: Path,
    n_images: int,
    size_wh: tuple[int, int] = (480, 270),
    seed: int = 0,
    val_fraction: float = 0.15,
    *,
    negative_probability: float = 0.35,
    jpeg_quality: int = 90,
) -> Path:
    """Write a YOLO-format detection set of random workshop scenes.

    Layout: ``images/{train,val}/NNNNN.jpg``, ``labels/{train,val}/NNNNN.txt`` (one
    ``class cx cy w h`` line per box, normalised to ``[0, 1]``; empty for negatives) and
    ``data.yaml`` naming the classes ``fire`` and ``smoke``.

    Args:
        out_dir: Folder to create or fill.
        n_images: Number of images, train and val together.
        size_wh: Image size ``(width, height)`` in pixels.
        seed: The whole set is a function of this seed.
        val_fraction: Share of images placed in ``val`` (at least one when positive).
        negative_probability: Chance that an image holds no flame.
        jpeg_quality: JPEG quality of the written images.

    Returns:
        Path of ``data.yaml``.

    Raises:
        ValueError: If ``n_images`` < 2 or ``val_fraction`` is outside ``[0, 0.9]``.
    """
    if n_images < 2:
        raise ValueError(f"n_images must be >= 2, got {n_images}")
    if not 0.0 <= val_fraction <= 0.9:
        raise ValueError(f"val_fraction must be in [0, 0.9], got {val_fraction}")
    out_dir = Path(out_dir).resolve()
    n_val = max(1, round(n_images * val_fraction)) if val_fraction > 0 else 0
    for split in ("train", "val"):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    w, h = size_wh
    for i in range(n_images):
        rng = np.random.default_rng([seed, i])
        spec = random_scene_spec(rng, size_wh, negative_probability=negative_probability)
        image, boxes = render_scene(spec, float(rng.uniform(0.0, 20.0)))
        split = "val" if i < n_val else "train"
        cv2.imwrite(
            str(out_dir / "images" / split / f"{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        )
        lines = [
            f"{b.class_id} {(b.xyxy[0] + b.xyxy[2]) / 2 / w:.6f} {(b.xyxy[1] + b.xyxy[3]) / 2 / h:.6f} "
            f"{(b.xyxy[2] - b.xyxy[0]) / w:.6f} {(b.xyxy[3] - b.xyxy[1]) / h:.6f}"
            for b in boxes
        ]
        (out_dir / "labels" / split / f"{i:05d}.txt").write_text("".join(f"{line}\n" for line in lines))
    clear_static_layer_cache()
    data_yaml = out_dir / "data.yaml"
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    data_yaml.write_text(
        f"# anjian synthetic workshop set: {n_images} images of {w}x{h}, seed {seed}\n"
        f"path: {json.dumps(str(out_dir))}\ntrain: images/train\nval: images/val\n"
        f"nc: {len(CLASS_NAMES)}\nnames:\n{names}"
    )
    return data_yaml


def write_demo_video(
    path: Path, seconds: float = 25.0, fps: int = 10, size_wh: tuple[int, int] = (640, 360), seed: int = 7
) -> Path:
    """Write the demo clip: ~5 s quiet (a static amber lamp), a flickering flame, ~5 s quiet.

    The clip is H.264 (yuv420p, one keyframe per second, no B-frames) in an MP4, so it can
    be looped into an RTSP server. The flame burns from 5 s to ``seconds - 5`` s; see
    :func:`demo_scene_spec`.

    Args:
        path: Output ``.mp4`` file; its folder is created.
        seconds: Length of the clip (at least 12 s).
        fps: Frames per second.
        size_wh: Frame size ``(width, height)``; both must be even.
        seed: Seeds textures, noise and flicker.

    Returns:
        ``path``.

    Raises:
        ValueError: If the size is odd, ``fps`` < 1 or ``seconds`` < 12.
    """
    spec = demo_scene_spec(size_wh, seconds=seconds, seed=seed)
    return write_scene_video(path, spec, seconds, fps)


def write_scene_video(path: Path, spec: SceneSpec, seconds: float, fps: int, *, crf: int = 23) -> Path:
    """Render ``seconds`` of a scene into an H.264 MP4 that loops cleanly into an RTSP server.

    yuv420p, one keyframe per second and no B-frames, so a looping reader can restart at any
    second.

    Args:
        path: Output ``.mp4`` file; its folder is created.
        spec: The scene; its size must be even.
        seconds: Length of the clip.
        fps: Frames per second.
        crf: x264 quality (23 good, 30 about what a CCTV camera streams: most sensor noise gone).

    Returns:
        ``path``.

    Raises:
        ValueError: If the size is odd or ``fps`` < 1.
    """
    size_wh = spec.size_wh
    if size_wh[0] % 2 or size_wh[1] % 2:
        raise ValueError(f"size_wh must be even for yuv420p, got {size_wh}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast", "g": str(fps), "bf": "0"}
        )
        stream.width, stream.height = size_wh
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            image, _ = render_scene(spec, i / fps)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clear_static_layer_cache()
    return path


def write_plant_footage(
    out_dir: Path, fps: int = 5, size_wh: tuple[int, int] = (640, 360)
) -> dict[str, Path]:
    """Write one looping clip per camera of the demo plant (see :mod:`anjian.datasets.synthetic.plant`).

    About 2 MB per camera at CCTV-like compression.

    Args:
        out_dir: Folder for ``<camera id>.mp4``; created.
        fps: Frames per second of the clips (the demo analyses every frame at 5).
        size_wh: Frame size ``(width, height)``; both even.

    Returns:
        The clip of each camera id.
    """
    clips = {}
    for camera in PLANT_CAMERAS:
        spec = plant_scene_spec(camera.camera_id, size_wh)
        clips[camera.camera_id] = write_scene_video(
            Path(out_dir) / f"{camera.camera_id}.mp4", spec, PLANT_LOOP_S, fps, crf=30
        )
    return clips

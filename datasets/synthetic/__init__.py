"""Procedural workshop footage with labelled flames, for the demo and its detector.

``make demo`` must raise a real alert on a fresh clone with no external data, so anjian
draws its own footage: a workshop (wall, floor, machines, benches, crates), distractors
that are *not* fire (static amber lamps and their floor reflections, safety cones, yellow
floor markings, workers in hi-vis vests) and animated, flickering flames with optional
grey smoke. Everything is deterministic from a seed and a timestamp.

The same renderer writes the YOLO training set of the demo detector
(:func:`write_training_set`) and the demo clip (:func:`write_demo_video`), so the detector
is trained on the kind of pictures the demo shows. The module imports only numpy, OpenCV,
PyAV and the standard library, so the core install can run it.

Example:
    >>> import numpy as np
    >>> spec = random_scene_spec(np.random.default_rng(0), (320, 180), n_flames=1)
    >>> image, boxes = render_scene(spec, t_s=1.0)
    >>> image.shape, boxes[0].class_name
    ((180, 320, 3), 'fire')
"""

from anjian.datasets.synthetic.drawing import render_scene
from anjian.datasets.synthetic.plant import PLANT_CAMERAS, PLANT_LOOP_S, plant_scene_spec
from anjian.datasets.synthetic.specs import (
    CLASS_NAMES,
    SceneSpec,
    demo_scene_spec,
    random_scene_spec,
)
from anjian.datasets.synthetic.writers import write_demo_video, write_plant_footage, write_training_set

# The entry points; the parts of a scene (FlameSpec, LampSpec, ...) are in .specs.
__all__ = [
    "CLASS_NAMES",
    "PLANT_CAMERAS",
    "PLANT_LOOP_S",
    "SceneSpec",
    "demo_scene_spec",
    "plant_scene_spec",
    "random_scene_spec",
    "render_scene",
    "write_demo_video",
    "write_plant_footage",
    "write_training_set",
]

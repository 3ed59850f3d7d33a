"""CLEVR-like scenes: a few flat shapes with a colour, a size and a position, rendered with Pillow.

Within a scene each (colour, shape) pair appears at most once, so "빨간 원" always names one
object; colours and shapes may repeat separately, which is what counting questions count.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

# (answer noun, adjective used before a shape, RGB)
COLOURS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("빨간색", "빨간", (220, 40, 40)),
    ("파란색", "파란", (40, 80, 230)),
    ("초록색", "초록색", (40, 170, 60)),
    ("노란색", "노란", (235, 205, 30)),
    ("보라색", "보라색", (150, 60, 190)),
)
SHAPES: tuple[str, ...] = ("원", "네모", "세모", "별")
SIZES: tuple[str, ...] = ("큰", "작은")
BACKGROUND = (235, 235, 235)
CANVAS = 100.0  # scene coordinates; rendering scales to any pixel size
_RADIUS = {"큰": 10.0, "작은": 6.5}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneObject:
    colour: str  # answer noun, e.g. "빨간색"
    shape: str
    size: str
    x: float  # centre, 0..CANVAS, x to the right
    y: float  # centre, 0..CANVAS, y downwards (위 = smaller y)

    @property
    def adjective(self) -> str:
        return next(adj for noun, adj, _ in COLOURS if noun == self.colour)

    @property
    def name(self) -> str:
        """The referring expression, unique in its scene: "빨간 원"."""
        return f"{self.adjective} {self.shape}"

    @property
    def radius(self) -> float:
        return _RADIUS[self.size]


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]

    def signature(self) -> tuple[tuple[str, str, str, int, int], ...]:
        """Identity of a scene for keeping held-out scenes out of training (positions to 1 unit)."""
        return tuple(sorted((o.colour, o.shape, o.size, round(o.x), round(o.y)) for o in self.objects))

    def to_json(self) -> list[dict[str, object]]:
        return [asdict(o) for o in self.objects]


def sample_scene(rng: random.Random, min_objects: int = 2, max_objects: int = 5, grid: int = 4) -> Scene:
    """Random non-overlapping objects with distinct (colour, shape) pairs.

    ``grid > 0`` puts each object in its own cell of a grid x grid layout (jittered inside the cell),
    so that a vision encoder whose patches match the cells sees one object per patch: what a tiny
    random encoder on CPU can learn from. ``grid = 0`` places objects anywhere.
    """
    count = rng.randint(min_objects, max_objects)
    pairs = rng.sample([(c[0], s) for c in COLOURS for s in SHAPES], count)
    if grid > 0:
        if count > grid * grid:
            raise ValueError(f"{count} objects do not fit a {grid}x{grid} grid")
        return Scene(tuple(_in_cells(rng, pairs, grid)))
    placed: list[SceneObject] = []
    for colour, shape in pairs:
        size = rng.choice(SIZES)
        for _ in range(200):
            r = _RADIUS[size]
            x, y = rng.uniform(r + 2, CANVAS - r - 2), rng.uniform(r + 2, CANVAS - r - 2)
            if all(math.dist((x, y), (o.x, o.y)) > r + o.radius + 4 for o in placed):
                placed.append(SceneObject(colour, shape, size, round(x, 1), round(y, 1)))
                break
    if len(placed) < min_objects:  # a crowded draw: try again (rare)
        return sample_scene(rng, min_objects, max_objects, grid)
    return Scene(tuple(placed))


def _in_cells(rng: random.Random, pairs: list[tuple[str, str]], grid: int) -> list[SceneObject]:
    cell = CANVAS / grid
    cells = rng.sample(range(grid * grid), len(pairs))
    out = []
    for (colour, shape), index in zip(pairs, cells, strict=True):
        size = rng.choice(SIZES)
        room = max(0.0, cell / 2 - _RADIUS[size] * 1.1 - 1.0)  # stars and triangles reach 1.1 r
        x = (index % grid + 0.5) * cell + rng.uniform(-room, room)
        y = (index // grid + 0.5) * cell + rng.uniform(-room, room)
        out.append(SceneObject(colour, shape, size, round(x, 1), round(y, 1)))
    return out


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB image, drawn large and downsampled so small shapes keep their edges."""
    big = size * _SUPERSAMPLE
    scale = big / CANVAS
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        rgb = next(c[2] for c in COLOURS if c[0] == obj.colour)
        _draw_shape(draw, obj.shape, obj.x * scale, obj.y * scale, obj.radius * scale, rgb)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, r: float,
                rgb: tuple[int, int, int]) -> None:
    if shape == "원":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rgb)
    elif shape == "네모":
        side = r * 0.85
        draw.rectangle((x - side, y - side, x + side, y + side), fill=rgb)
    elif shape == "세모":
        draw.polygon(_regular_points(x, y + r * 0.2, r * 1.1, 3), fill=rgb)
    elif shape == "별":
        draw.polygon(_star_points(x, y, r * 1.1, r * 0.45), fill=rgb)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _regular_points(x: float, y: float, r: float, n: int) -> list[tuple[float, float]]:
    return [(x + r * math.sin(2 * math.pi * k / n), y - r * math.cos(2 * math.pi * k / n)) for k in range(n)]


def _star_points(x: float, y: float, outer: float, inner: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = outer if k % 2 == 0 else inner
        angle = math.pi * k / 5
        points.append((x + r * math.sin(angle), y - r * math.cos(angle)))
    return points

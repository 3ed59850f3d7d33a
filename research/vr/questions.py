"""Korean questions about a scene, by type, from templates split into training and held-out sets.

Held-out templates recombine words that training templates use, in an order or combination that
never appears in training, so evaluation measures understanding rather than memorised phrasing.
Answers are short words (예/아니요, a colour, a shape, "N개", an object's name) for exact match.
With ``reasoned=True`` a yes/no relation answer first names the object that is further that way,
then gives the verdict ("초록색 네모가 더 왼쪽에 있으므로 아니요"): the comparison a small model
can make in one attention step, then the check against the question's subject. Scoring compares
the verdict (``finetune.vr.evaluate.final_answer``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from finetune.vr.evaluate import REASON_JOINER, which_pair
from research.vr.korean import Noun
from research.vr.scenes import COLOURS, SHAPES, Scene, SceneObject

YES, NO = "예", "아니요"
QUESTION_TYPES: tuple[str, ...] = ("existence", "colour", "shape", "count", "relation")
# Direction word -> (axis, sign): "a is <word> of b" when sign * (a - b) on that axis is positive.
DIRECTIONS: dict[str, tuple[str, int]] = {"왼쪽": ("x", -1), "오른쪽": ("x", 1), "위": ("y", -1), "아래": ("y", 1)}
MIN_SEPARATION = 12.0  # scene units; closer pairs are never asked about (the answer would be unclear)
# Training wordings that move the names (``varied``): a tiny LM taught one wording per form found the
# names by their place in the question and failed every held-out wording that moved them
# (docs/lab/2026-11-30-vr-proof.md, twenty-first stop). None is what makes a relation template held out
# ("그림에서" in front, "도형은" for "것은"), and questions that begin with "그림" keep their front.
FRONT_WORDS: tuple[str, ...] = ("사진에서 ", "여기서 ", "이미지에서 ")
WHICH_NOUNS: tuple[str, ...] = ("쪽은", "물체는")  # in place of "것은" in "which one"
# Other nouns for "도형" in the shape and count questions (``varied_nouns``): a model that met "도형"
# only as "the shape of colour X" read the held-out "더 왼쪽에 있는 도형은" as a shape question
# and answered with a shape in another colour (docs/lab/2026-11-30-vr-proof.md, twenty-fifth stop).
SHAPE_NOUNS: dict[str, tuple[str, ...]] = {"도형은": ("것은", "물체는"), "도형의": ("것의", "물체의"),
                                           "도형이": ("것이", "물체가")}


@dataclass(frozen=True)
class Template:
    id: str
    type: str
    text: str
    heldout: bool


def _t(id_: str, type_: str, text: str, heldout: bool = False) -> Template:
    return Template(id_, type_, text, heldout)


TEMPLATES: tuple[Template, ...] = (
    _t("exist_1", "existence", "그림에 {a.ig} 있나요?"),
    _t("exist_2", "existence", "{a.ig} 있어요?"),
    _t("exist_3", "existence", "그림에 {a.ig} 보이나요?"),
    _t("exist_4", "existence", "{a.ig} 그림에 있나요?", heldout=True),
    _t("colour_1", "colour", "{s.eun} 무슨 색인가요?"),
    _t("colour_2", "colour", "{s}의 색깔은 무엇인가요?"),
    _t("colour_3", "colour", "그림에 있는 {s.eun} 무슨 색인가요?"),
    _t("colour_4", "colour", "그림에 있는 {s}의 색깔은 무엇인가요?", heldout=True),
    _t("shape_1", "shape", "{c} 도형은 무슨 모양인가요?"),
    _t("shape_2", "shape", "{c} 도형의 모양은 무엇인가요?"),
    _t("shape_3", "shape", "그림에 있는 {c} 도형은 무슨 모양인가요?"),
    _t("shape_4", "shape", "그림에 있는 {c} 도형의 모양은 무엇인가요?", heldout=True),
    _t("count_1", "count", "{s.ig} 몇 개 있나요?"),
    _t("count_2", "count", "{c} 도형은 몇 개인가요?"),
    _t("count_3", "count", "그림에 {c} 도형이 몇 개 있나요?"),
    _t("count_4", "count", "그림에 {s.ig} 몇 개 있나요?", heldout=True),
    _t("count_5", "count", "{s.eun} 몇 개인가요?", heldout=True),
    _t("rel_1", "relation", "{a.eun} {b}의 {d}에 있나요?"),
    _t("rel_2", "relation", "{b}의 {d}에 {a.ig} 있나요?"),
    _t("rel_3", "relation", "{a.wa} {b} 중 더 {d}에 있는 것은 무엇인가요?"),
    _t("rel_4", "relation", "그림에서 {a.eun} {b}의 {d}에 있나요?", heldout=True),
    _t("rel_5", "relation", "{a.wa} {b} 중 더 {d}에 있는 도형은 무엇인가요?", heldout=True),
)


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    type: str
    template: str
    heldout_template: bool


def templates_for(type_: str, heldout: bool) -> list[Template]:
    return [t for t in TEMPLATES if t.type == type_ and t.heldout == heldout]


def ask(scene: Scene, type_: str, rng: random.Random, heldout: bool, *,
        reasoned: bool = False, varied: bool = False) -> Question | None:
    """One question of a type about the scene, or None when the scene cannot support it.

    ``reasoned`` writes yes/no relation answers with their reason first; it draws the same random
    numbers, so a seeded set differs from the plain one only in those answers. ``varied`` rewords
    a seen template's question half the time (``reword``); it draws more numbers.
    """
    template = rng.choice(templates_for(type_, heldout))
    made = _relation(scene, template, rng, reasoned) if type_ == "relation" else _MAKERS[type_](scene, template, rng)
    if made is None:
        return None
    question, answer = made
    if varied and not template.heldout and rng.random() < 0.5:
        question = reword(question, rng)
    return Question(question, answer, type_, template.id, template.heldout)


def reword(question: str, rng: random.Random) -> str:
    """Another noun for "것" in "which one", or a word in front where the question has none."""
    if "있는 것은" in question and rng.random() < 0.5:
        return question.replace("있는 것은", f"있는 {rng.choice(WHICH_NOUNS)}", 1)
    if question.startswith("그림"):
        return question
    return rng.choice(FRONT_WORDS) + question


def renoun(question: str, rng: random.Random) -> str:
    """Another noun for "도형" ("빨간 도형은 무슨 모양인가요?" -> "빨간 것은 …"); others unchanged."""
    for word, nouns in SHAPE_NOUNS.items():
        if word in question:
            return question.replace(word, rng.choice(nouns), 1)
    return question


def _existence(scene: Scene, template: Template, rng: random.Random) -> tuple[str, str] | None:
    present = {(o.adjective, o.shape) for o in scene.objects}
    if rng.random() < 0.5:
        adjective, shape = rng.choice(sorted(present))
        answer = YES
    else:
        # Absent pairs that share a colour or a shape with the scene are the informative "no"s.
        absent = [(c[1], s) for c in COLOURS for s in SHAPES if (c[1], s) not in present]
        near = [p for p in absent if any(p[0] == q[0] or p[1] == q[1] for q in present)]
        adjective, shape = rng.choice(near or absent)
        answer = NO
    return template.text.format(a=Noun(f"{adjective} {shape}")), answer


def _colour(scene: Scene, template: Template, rng: random.Random) -> tuple[str, str] | None:
    counts = Counter(o.shape for o in scene.objects)
    unique = [o for o in scene.objects if counts[o.shape] == 1]
    if not unique:
        return None
    obj = rng.choice(unique)
    return template.text.format(s=Noun(obj.shape)), obj.colour


def _shape(scene: Scene, template: Template, rng: random.Random) -> tuple[str, str] | None:
    counts = Counter(o.colour for o in scene.objects)
    unique = [o for o in scene.objects if counts[o.colour] == 1]
    if not unique:
        return None
    obj = rng.choice(unique)
    return template.text.format(c=obj.adjective), obj.shape


def _count(scene: Scene, template: Template, rng: random.Random) -> tuple[str, str] | None:
    by_shape = "{s" in template.text
    values = list(SHAPES) if by_shape else [c[1] for c in COLOURS]
    counts = Counter(o.shape if by_shape else o.adjective for o in scene.objects)
    by_number: dict[int, list[str]] = {}
    for value in values:
        by_number.setdefault(counts[value], []).append(value)
    # Pick the answer first, uniformly over the counts this scene offers, so "1개" is no safe guess.
    number = rng.choice(sorted(by_number))
    value = rng.choice(by_number[number])
    text = template.text.format(s=Noun(value)) if by_shape else template.text.format(c=value)
    return text, f"{number}개"


def _relation(scene: Scene, template: Template, rng: random.Random,
              reasoned: bool = False) -> tuple[str, str] | None:
    options = []
    for a in scene.objects:
        for b in scene.objects:
            for word, (axis, _) in DIRECTIONS.items():
                if a is not b and abs(_coord(a, axis) - _coord(b, axis)) >= MIN_SEPARATION:
                    options.append((a, b, word))
    if not options:
        return None
    a, b, word = rng.choice(options)
    is_true = _is_towards(a, b, word)
    text = template.text.format(a=Noun(a.name), b=Noun(b.name), d=word)
    further = a.name if is_true else b.name
    if "무엇" in template.text:  # which of the two is further <word>
        return text, further
    verdict = YES if is_true else NO
    if reasoned:
        return text, f"{Noun(further).ig} 더 {word}에 {REASON_JOINER}{verdict}"
    return text, verdict


def with_which_noun(question: str, noun: str) -> str:
    """A "which one" question with ``noun`` ("도형은", "하나는", …) in place of the word that names what
    is picked ("… 있는 것은 무엇인가요?"); other questions unchanged."""
    if which_pair(question) is None:
        return question
    head, found, tail = question.rpartition("있는 ")
    return f"{head}{found}{noun}{tail[tail.index(' '):]}" if found and " " in tail else question


def _coord(obj: SceneObject, axis: str) -> float:
    return obj.x if axis == "x" else obj.y


def _is_towards(a: SceneObject, b: SceneObject, word: str) -> bool:
    axis, sign = DIRECTIONS[word]
    return sign * (_coord(a, axis) - _coord(b, axis)) > 0


_MAKERS: dict[str, Callable[[Scene, Template, random.Random], tuple[str, str] | None]] = {
    "existence": _existence,
    "colour": _colour,
    "shape": _shape,
    "count": _count,
}


def caption(scene: Scene) -> str:
    """A Korean caption listing objects left to right: "왼쪽부터 큰 빨간 원과 작은 파란 별이 있습니다."."""
    names = [f"{o.size} {o.name}" for o in sorted(scene.objects, key=lambda o: o.x)]
    if len(names) == 1:
        return f"{Noun(names[0]).ig} 있습니다."
    # "A, B와 C가": commas, 와/과 before the last name, 이/가 after it.
    head = ", ".join(names[:-2])
    pair = f"{Noun(names[-2]).wa} {Noun(names[-1]).ig}"
    return f"왼쪽부터 {head + ', ' if head else ''}{pair} 있습니다."

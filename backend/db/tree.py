"""The conversation tree, computed from its nodes (pure: no database).

Every message has `parent_id` (None for a first user message); siblings share a parent. The
shown branch is the path from a root to the conversation's `current_leaf_id`. A conversation's
nodes are read once (`messages.tree_nodes`: ids, parents and times only) and walked in memory,
which costs one indexed query however deep the branch is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from backend.core.clock import as_utc


@dataclass(frozen=True)
class Siblings:
    """Where a message sits among its siblings (oldest first): index is 1-based, as shown."""

    index: int
    count: int
    ids: list[ObjectId]


@dataclass(frozen=True)
class Node:
    id: ObjectId
    parent_id: ObjectId | None
    created_at: dt.datetime


class Tree:
    def __init__(self, docs: Iterable[Mapping[str, Any]]) -> None:
        nodes = [Node(d["_id"], d.get("parent_id"), as_utc(d["created_at"])) for d in docs]
        nodes.sort(key=lambda n: (n.created_at, n.id))
        self.nodes: dict[ObjectId, Node] = {n.id: n for n in nodes}
        self.children: dict[ObjectId | None, list[Node]] = {}
        for node in nodes:
            self.children.setdefault(node.parent_id, []).append(node)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.nodes

    def newest(self) -> ObjectId | None:
        return next(reversed(self.nodes), None)

    def path(self, leaf_id: ObjectId | None) -> list[ObjectId]:
        """Root → leaf (inclusive); empty for None or an id not in the tree."""
        ids: list[ObjectId] = []
        node = self.nodes.get(leaf_id) if leaf_id is not None else None
        while node is not None and len(ids) <= len(self.nodes):  # the bound guards a damaged cycle
            ids.append(node.id)
            node = self.nodes.get(node.parent_id) if node.parent_id is not None else None
        return ids[::-1]

    def shown_leaf(self, current_leaf_id: ObjectId | None) -> ObjectId | None:
        """The conversation's leaf, or the newest message when it names none (older documents)."""
        return current_leaf_id if current_leaf_id in self.nodes else self.newest()

    def newest_leaf(self, message_id: ObjectId) -> ObjectId:
        """Descend through the newest child until a message without children."""
        current = message_id
        for _ in range(len(self.nodes)):
            kids = self.children.get(current)
            if not kids:
                break
            current = kids[-1].id
        return current

    def siblings(self, message_id: ObjectId) -> Siblings:
        node = self.nodes[message_id]
        ids = [n.id for n in self.children.get(node.parent_id, [])]
        return Siblings(ids.index(message_id) + 1, len(ids), ids)

    def subtree(self, message_id: ObjectId) -> list[ObjectId]:
        """The message and everything below it."""
        found, todo = [], [message_id]
        while todo:
            current = todo.pop()
            found.append(current)
            todo.extend(n.id for n in self.children.get(current, []))
        return found

    def leaf_after_delete(self, message_id: ObjectId) -> ObjectId | None:
        """Where the shown branch goes when `message_id`'s subtree is deleted: the newest remaining
        sibling's newest leaf, else the parent (None when nothing is left)."""
        node = self.nodes[message_id]
        others = [n for n in self.children.get(node.parent_id, []) if n.id != message_id]
        if others:
            return self.newest_leaf(others[-1].id)
        return node.parent_id

"""Consumer groups on RabbitMQ 3.10 without a server of tidings' own: each
group's GroupState and committed offsets are one value in a CAS register
(register.py) on the stream ``tidings/group/<group>``, so a transition or a
fenced commit (GroupState.check_commit) is one compare-and-set: atomic
across processes, replicated by RabbitMQ. Group names are listed in the
catalog register. Mixed into StreamLog (log.py)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from ...errors import GroupNotFound, TopicNotFound
from ...groups.coordinator import GroupState
from ...message import TopicPartition
from ...ports.log import GroupTransition, T
from . import catalog
from .register import UNCHANGED, Register
from .streams import StreamLink

R = TypeVar("R")


class StreamGroups:
    """The group half of the LogEngine port."""

    _link: StreamLink
    _catalog: Register
    _registers: dict[str, Register]
    _listed: set[str]  # groups this process saw in the catalog (commits skip it)

    def _register(self, group: str) -> Register:
        """The group's register, one per process: its lock makes this
        process's writers take turns (RabbitMQ also refuses two publishers
        with one reference on one connection)."""
        name = catalog.group_stream(group)
        register = self._registers.get(name)
        if register is None:
            register = self._registers[name] = Register(self._link, name)
        return register

    def _call(self, coro: Coroutine[Any, Any, R]) -> R:
        raise NotImplementedError

    async def _group(self, group: str) -> tuple[Register, dict[str, int]]:
        """The group's register (its stream created, its name listed) and
        every topic's partition count, from one load of the catalog."""
        register = self._register(group)
        await self._catalog.ensure()
        cat = (await self._catalog.load()).value or catalog.empty()
        if group not in _names(cat):
            await register.ensure()
            await self._catalog.update(lambda cat: (catalog.with_group(cat, group, True), None))
        self._listed.add(group)
        return register, {name: raw["partitions"] for name, raw in cat["topics"].items()}

    # ---- transitions ----------------------------------------------------
    def group_transition(self, group: str, fn: GroupTransition[T]) -> T:
        return self._call(self._transition(group, fn))

    async def _transition(self, group: str, fn: GroupTransition[T]) -> T:
        register, counts = await self._group(group)

        def apply(value: Any) -> tuple[Any, T]:
            state, offsets = _unpack(group, value)
            result = fn(state, dict(counts))
            return _pack(state, offsets), result

        return await register.update(apply)

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        self._call(self._commit(group, member_id, dict(offsets), now))

    async def _commit(
        self, group: str, member_id: str | None, offsets: dict[TopicPartition, int], now: float
    ) -> None:

        def apply(value: Any) -> tuple[Any, None]:
            state, stored = _unpack(group, value)
            state.check_commit(member_id, set(offsets), now)  # fencing, in the same CAS
            stored.update(offsets)
            return _pack(state, stored), None

        # A commit skips the catalog for a group already seen listed there
        # (a catalog read costs RabbitMQ milliseconds); should the group
        # have been deleted since, it is listed again, as a first commit is.
        if group in self._listed:
            try:
                await self._register(group).update(apply)
                return
            except TopicNotFound:
                await self._unlist(group)
        register, _ = await self._group(group)
        await register.update(apply)

    async def _unlist(self, group: str) -> None:
        """Forget what this process knew of ``group`` (deleted)."""
        self._listed.discard(group)
        register = self._registers.pop(catalog.group_stream(group), None)
        if register is not None:
            await register.forget()

    # ---- reading -------------------------------------------------------
    def committed(self, group: str) -> dict[TopicPartition, int]:
        return self._call(self._committed(group))

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        value = await self._peek(group)
        return {} if value is None else _unpack(group, value)[1]

    async def _peek(self, group: str) -> Any:
        """The group's stored value without creating anything (None: none)."""
        await self._catalog.ensure()
        if group not in _names((await self._catalog.load()).value):
            return None
        register = self._register(group)
        try:
            return (await register.load()).value
        except TopicNotFound:  # deleted meanwhile
            return None

    def list_groups(self) -> list[str]:
        async def names() -> list[str]:
            await self._catalog.ensure()
            return _names((await self._catalog.load()).value)

        return sorted(self._call(names()))

    def load_group(self, group: str) -> GroupState | None:
        value = self._call(self._peek(group))
        return None if value is None else _unpack(group, value)[0]

    def delete_group(self, group: str) -> None:
        self._call(self._delete_group(group))

    async def _delete_group(self, group: str) -> None:
        await self._catalog.ensure()

        def drop(cat: Any) -> tuple[Any, None]:
            if group not in _names(cat):
                raise GroupNotFound(f"consumer group {group!r} does not exist")
            return catalog.with_group(cat, group, False), None

        await self._catalog.update(drop)
        await self._unlist(group)
        await self._link.delete(catalog.group_stream(group))

    def forget_topic(self, topic: str) -> None:
        """Drop the offsets every group committed on ``topic`` (deleted)."""
        self._call(self._forget_topic(topic))

    async def _forget_topic(self, topic: str) -> None:
        for group in _names((await self._catalog.load()).value):
            register = self._register(group)

            def drop(value: Any, group: str = group) -> tuple[Any, None]:
                if value is None:
                    return UNCHANGED, None
                state, offsets = _unpack(group, value)
                kept = {tp: o for tp, o in offsets.items() if tp.topic != topic}
                if len(kept) == len(offsets):
                    return UNCHANGED, None
                return _pack(state, kept), None

            try:
                await register.update(drop)
            except TopicNotFound:  # the group went meanwhile
                pass


def _names(cat: Any) -> list[str]:
    return list((cat or catalog.empty())["groups"])


def _unpack(group: str, value: Any) -> tuple[GroupState, dict[TopicPartition, int]]:
    if value is None:
        return GroupState(group), {}
    state = GroupState.from_json(value["state"])
    offsets = {TopicPartition(t, p): o for t, p, o in value["offsets"]}
    return state, offsets


def _pack(state: GroupState, offsets: dict[TopicPartition, int]) -> dict[str, Any]:
    return {
        "state": state.to_json(),
        "offsets": [[tp.topic, tp.partition, o] for tp, o in sorted(offsets.items())],
    }

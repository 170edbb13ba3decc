"""Stream messages cut from served snapshot bodies: once per (cluster, version), no pydantic.

A served snapshot body is ``{"version":V,"routing":{...},"bundles":{...},"bundle_updates":{...}}``
(:mod:`federation.service.snapshot_bytes`). A stream sends the routing as a ``snapshot``
message and the bundle section as a separate ``bundles`` message, only when it differs from the
one the stream sent last. Every cluster's body of one rebuild ends with the same bundle section,
so :class:`PushEncoder` recognises it by comparing bytes against the few sections seen last
(one ``memcmp``) and builds its message once, not once per cluster. Bodies of another shape
(read back from an older store, or hand-made in tests) are parsed as JSON instead: slower, same
messages. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from federation.service.served import ServedSnapshot
from federation.service.snapshot_bytes import EncodedContent
from federation.service.stream_delta import routing_delta_of_parts, routing_delta_within

#: Where the bundle section starts. Routing JSON cannot contain it: a quote inside a string is
#: escaped, and the only maps in routing (weights, cluster health) have numbers as values.
_BUNDLES_KEY = b',"bundles":{'
#: Bundle sections remembered (current, previous, and a little slack for replicas catching up).
_KEEP_SECTIONS = 4


@dataclass(frozen=True)
class BundleSection:
    """One set of relayed bundles: its ``digest``, the bytes as they end a snapshot body
    (``,"bundles":{...},"bundle_updates":{...}}``) and its ``bundles`` stream message."""

    digest: str
    raw: bytes
    line: bytes


_SNAPSHOT_LINE_HEAD = b'{"type":"snapshot","version":%d,"routing":'


class Push:
    """What a stream sends for one snapshot version: its bundles (if the stream has not sent
    that section yet) and its ``snapshot`` message, each newline-terminated.

    Made from a rebuild's ``content`` (routing parts), the ``snapshot`` message is built only
    when first asked for: a watcher that takes a delta never needs it (at 1,000 clusters a
    230 KiB copy per cluster per flip), and a delta between two such pushes is cut from their
    parts (:func:`~federation.service.stream_delta.routing_delta_of_parts`)."""

    __slots__ = ("_line", "bundles", "content", "version")

    def __init__(
        self,
        version: int,
        bundles: BundleSection,
        snapshot_line: bytes | None = None,
        *,
        content: EncodedContent | None = None,
    ) -> None:
        if snapshot_line is None and content is None:
            raise ValueError("a push needs its snapshot message or the content to build it")
        self.version = version
        self.bundles = bundles
        self.content = content
        self._line = snapshot_line

    @property
    def snapshot_line(self) -> bytes:
        """The ``snapshot`` message (built on first use from the content)."""
        if self._line is None:
            assert self.content is not None
            head = _SNAPSHOT_LINE_HEAD % self.version
            self._line = self.content.routing_bytes(self.version, head, b"}\n")
        return self._line

    @property
    def line_size(self) -> int:
        """``len(snapshot_line)``, without building it."""
        if self._line is None:
            assert self.content is not None
            head = len(_SNAPSHOT_LINE_HEAD % self.version)
            return head + self.content.routing_size(self.version) + 2
        return len(self._line)

    @property
    def routing(self) -> bytes:
        """The routing JSON inside :attr:`snapshot_line`."""
        start, end = self.routing_at
        return self.snapshot_line[start:end]

    @property
    def routing_at(self) -> tuple[int, int]:
        """Where :attr:`routing` is in :attr:`snapshot_line` (a delta is cut without copying)."""
        start = self.snapshot_line.index(b'"routing":') + len(b'"routing":')
        return start, len(self.snapshot_line) - 2


def _section(raw: bytes) -> BundleSection:
    digest = hashlib.sha256(raw).hexdigest()[:32]
    line = b'{"type":"bundles","digest":"%s"' % digest.encode() + raw + b"\n"
    return BundleSection(digest, raw, line)


_BundleSet = tuple[dict[str, str], dict[str, str]]


def _changes(old: dict[str, str], new: dict[str, str]) -> dict[str, str | None]:
    """What ``new`` changed against ``old``: added or changed values, removed keys as ``None``."""
    out: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    out.update((k, None) for k in old if k not in new)
    return out


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class PushEncoder:
    """Caches each cluster's latest :class:`Push`; shared by all streams of a replica."""

    def __init__(self) -> None:
        self._pushes: dict[str, Push] = {}
        self._sections: list[BundleSection] = []
        self._deltas: dict[str, tuple[int, int, bytes | None]] = {}
        #: parsed bundle sets of the remembered sections, and bundle deltas cut between them
        self._parsed_sets: dict[str, _BundleSet] = {}
        self._set_deltas: dict[tuple[str, str], bytes] = {}

    def bundles_line(self, sent: str, section: BundleSection) -> bytes:
        """The message taking a gateway that holds bundle set ``sent`` (a digest; ``""`` for
        none) to ``section``: a ``bundles_delta`` when ``sent`` is a remembered section and the
        delta is smaller, else the full ``bundles`` message. Cut once per (sent, section) and
        shared by every stream."""
        if not sent or sent == section.digest:
            return section.line
        key = (sent, section.digest)
        line = self._set_deltas.get(key)
        if line is None:
            base = next((known for known in self._sections if known.digest == sent), None)
            if base is None:
                return section.line  # not remembered (evicted, or never seen here)
            line = self._set_delta(base, section)
            self._set_deltas = {k: v for k, v in self._set_deltas.items() if k[1] == key[1]}
            self._set_deltas[key] = line
        return line

    def _set_delta(self, base: BundleSection, section: BundleSection) -> bytes:
        old, new = self._parsed_set(base), self._parsed_set(section)
        doc = {
            "type": "bundles_delta",
            "digest": section.digest,
            "base": base.digest,
            "bundles": _changes(old[0], new[0]),
            "bundle_updates": _changes(old[1], new[1]),
        }
        line = _compact(doc) + b"\n"
        return line if len(line) < len(section.line) else section.line

    def _parsed_set(self, section: BundleSection) -> _BundleSet:
        parsed = self._parsed_sets.get(section.digest)
        if parsed is None:
            doc = json.loads(b"{" + section.raw[1:])
            parsed = (doc.get("bundles") or {}, doc.get("bundle_updates") or {})
            kept = {known.digest for known in self._sections}
            self._parsed_sets = {d: p for d, p in self._parsed_sets.items() if d in kept}
            self._parsed_sets[section.digest] = parsed
        return parsed

    def delta(self, cluster: str, base: Push, push: Push) -> bytes | None:
        """The ``delta`` message taking a gateway from ``base`` to ``push`` (both ``cluster``'s),
        computed once per (base, version) and shared by the cluster's streams; ``None`` when a
        full ``snapshot`` message is as small or the routings do not diff (send ``push``)."""
        cached = self._deltas.get(cluster)
        if cached is not None and cached[:2] == (base.version, push.version):
            return cached[2]
        line = self._delta_line(base, push)
        self._deltas[cluster] = (base.version, push.version, line)
        return line

    def _delta_line(self, base: Push, push: Push) -> bytes | None:
        delta = None
        if base.content is not None and push.content is not None:  # no message built
            delta = routing_delta_of_parts(base.content.routing, push.content.routing, push.version)
        if delta is None:
            delta = routing_delta_within(
                base.snapshot_line,
                base.routing_at,
                push.snapshot_line,
                push.routing_at,
                push.version,
            )
        if delta is None:
            return None
        line = b'{"type":"delta","version":%d,"base":%d,"routing":%s}\n' % (
            push.version, base.version, delta)  # fmt: skip
        return line if len(line) < push.line_size else None

    def push(self, cluster: str, version: int, body: bytes) -> Push:
        """The messages for ``cluster``'s snapshot ``version`` whose served body is ``body``."""
        cached = self._pushes.get(cluster)
        if cached is not None and cached.version == version:
            return cached
        push = self._cut(version, body) or self._parsed(version, body)
        self._pushes[cluster] = push
        return push

    def push_served(self, cluster: str, served: ServedSnapshot) -> Push:
        """:meth:`push` of a served snapshot, from its routing and bundle section apart when
        it has them (no body is built; one rebuild's section is recognised by identity)."""
        cached = self._pushes.get(cluster)
        if cached is not None and cached.version == served.version:
            return cached
        content = served.content
        if content is None:
            return self.push(cluster, served.version, served.body)
        push = Push(served.version, self._section_of(content.shared.raw), content=content)
        self._pushes[cluster] = push
        return push

    def _section_of(self, raw: bytes) -> BundleSection:
        for section in self._sections:
            if section.raw is raw:
                return section
        return self._remember(_section(raw))

    def forget(self, cluster: str) -> None:
        self._pushes.pop(cluster, None)
        self._deltas.pop(cluster, None)

    def _cut(self, version: int, body: bytes) -> Push | None:
        """The fast path: slice the canonical body (``None`` if it is not canonical)."""
        head = b'{"version":%d,"routing":' % version
        if not body.startswith(head) or not body.endswith(b"}}"):
            return None
        split = body.find(_BUNDLES_KEY, len(head))
        if split < 0:
            return None
        line = b"".join(
            (
                b'{"type":"snapshot","version":%d,"routing":' % version,
                body[len(head) : split],
                b"}\n",
            )
        )
        return Push(version, self._section_at(body, split), line)

    def _section_at(self, body: bytes, start: int) -> BundleSection:
        size = len(body) - start
        for section in self._sections:
            if len(section.raw) == size and body.startswith(section.raw, start):
                return section
        return self._remember(_section(body[start:]))

    def _remember(self, section: BundleSection) -> BundleSection:
        for known in self._sections:
            if known.raw == section.raw:
                return known
        self._sections = [section, *self._sections[: _KEEP_SECTIONS - 1]]
        return section

    def _parsed(self, version: int, body: bytes) -> Push:
        """Any other body: parse it. What is not a JSON object becomes a snapshot without
        routing, which the gateway NACKs naming the problem."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            doc = {}
        raw = (
            b',"bundles":'
            + _compact(doc.get("bundles", {}))
            + b',"bundle_updates":'
            + _compact(doc.get("bundle_updates", {}))
            + b"}"
        )
        line = _compact({"type": "snapshot", "version": version, "routing": doc.get("routing")})
        return Push(version, self._remember(_section(raw)), line + b"\n")

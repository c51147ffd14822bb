"""Record checks and keep flags: the one place the daemon, the CLI and tests write the database.

    store = Store("sqlite:///twitchwatch.db")
    store.upgrade()                                   # `twitchwatch db upgrade`
    event = store.record(record, confirmations=2)     # a CheckRecord in; FlagEvent("open", {...}) or None
    store.flags()                                     # what `twitchwatch flags --json` prints
    store.record_review(ReviewRow(flag_id=3, ...))     # a human verdict (monitor/review.py); "rejected" closes

Every write is one transaction. `record` locks the channel's row first
(SELECT ... FOR UPDATE on PostgreSQL; SQLite's write lock, taken at BEGIN),
so two workers checking one channel apply the flag rules one after the other;
a partial unique index keeps at most one open flag per channel whatever
happens. A transaction that loses its connection (the database restarted) is
retried once; `record` first looks for its own observation, so a commit whose
answer was lost is neither lost nor written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from alembic.util import CommandError
from sqlalchemy import Insert, Table, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ReviewError, StoreError
from monitor.record import CheckRecord, iso
from monitor.store import migrate
from monitor.store.engine import make_engine, missing_sqlite_file, normalize_url, safe_url
from monitor.store.models import (
    CHANNEL_FIELDS,
    CLOSED,
    OPEN,
    REJECTED,
    Category,
    Channel,
    Flag,
    Observation,
    Review,
)
from monitor.verdict import GAMEPLAY, ChannelState, Outcome, Transition, step

log = logging.getLogger(__name__)

T = TypeVar("T")
_NOT_COMMITTED = object()
NOT_CURRENT = "database is not at the current schema: run `twitchwatch db upgrade`"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FlagEvent:
    """What a write did to a flag: action "open", "extend" or "close", and the flag as `flags()` shows it."""

    action: str
    flag: dict[str, Any]
    reason: str = ""  # for close: "agrees" | "left_category" | "offline"


@dataclass(frozen=True)
class ReviewRow:
    """A human verdict to store: on a flag (flag_id) or on a queued check of no flag (clip_id)."""

    channel_id: str
    declared_game_id: str
    label: str  # what is on screen: a category id or "gameplay"
    verdict: str  # "confirmed" | "rejected"
    clips: int  # retained clips moved into training
    flag_id: int | None = None
    clip_id: str | None = None


REVIEW_CLOSE_REASON = "rejected"  # a flag a human rejected: a false positive


class Store:
    """The database of observations and flags, on SQLite or PostgreSQL."""

    def __init__(self, database_url: str):
        self.url = normalize_url(database_url)
        self.engine = make_engine(self.url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    # -- schema ---------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or migrate the database to the current schema (Alembic upgrade head)."""
        try:
            migrate.upgrade(self.url)
        except (SQLAlchemyError, CommandError) as exc:
            raise StoreError(f"cannot upgrade the database at {safe_url(self.url)}: {_reason(exc)}") from None

    def ensure_current(self) -> None:
        """Raise StoreError unless the database exists, is reachable and is at the current schema."""
        missing = missing_sqlite_file(self.url)
        if missing is not None:  # checked before connecting, which would leave an empty file behind
            raise StoreError(f"no database at {missing}: create it with `twitchwatch db upgrade` (with the same "
                             "--config), or point storage.database_url at an existing one")
        try:
            current = migrate.current_revisions(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot reach the database at {safe_url(self.url)}: {_reason(exc)}") from None
        heads = migrate.head_revisions()
        if current == heads:
            return
        if current - migrate.known_revisions():
            raise StoreError(f"database is at schema {', '.join(sorted(current))}, newer than this "
                             f"twitchwatch knows ({', '.join(sorted(heads))}): upgrade twitchwatch")
        raise StoreError(NOT_CURRENT)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------

    def upsert_categories(self, names: dict[str, str]) -> None:
        """Insert or rename categories: {Twitch game id: name}."""
        if not names:
            return

        def work(session: Session) -> None:
            stmt = _insert(session, Category.__table__).values(
                [{"id": str(gid), "name": name} for gid, name in names.items()])
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"name": stmt.excluded.name}))

        self._transact("upsert_categories", work, write=True)

    def record(self, obs: CheckRecord, *, confirmations: int) -> FlagEvent | None:
        """Store one check and apply the flag rules to its channel, in one transaction."""
        return self._transact(
            f"record {obs.user_login}",
            lambda session: _record(session, obs, confirmations),
            write=True,
            committed=lambda session: _recorded_before(session, obs, confirmations),
        )

    def close_missing(self, category_id: str, live_user_ids: set[str]) -> list[FlagEvent]:
        """Close ("offline") the open flags in a category whose channel is no longer live in it."""
        return self._transact(
            f"close_missing {category_id}",
            lambda session: _close_missing(session, category_id, set(live_user_ids)),
            write=True,
        )

    def record_review(self, row: ReviewRow) -> dict[str, Any] | None:
        """Store a human verdict; a rejected open flag closes ("rejected"). Return the flag as `flags()` shows it.

        ReviewError when the flag does not exist or has a verdict already (the
        unique index settles two reviewers racing on one flag).
        """
        return self._transact(f"review {row.flag_id or row.clip_id}", lambda session: _record_review(session, row),
                              write=True)

    # -- reads ----------------------------------------------------------------

    def flag(self, flag_id: int) -> dict[str, Any] | None:
        """Return one flag in `flags --json` shape, or None."""

        def work(session: Session) -> dict[str, Any] | None:
            flag = session.get(Flag, flag_id)
            if flag is None:
                return None
            return _flag_json(flag, session.get_one(Channel, flag.channel_id), _category_name(session, flag))

        return self._transact(f"flag {flag_id}", work, write=False)

    def category_names(self) -> dict[str, str]:
        """Return {category id: name} of every category the database knows."""

        def work(session: Session) -> dict[str, str]:
            return {c.id: c.name for c in session.scalars(select(Category))}

        return self._transact("category_names", work, write=False)

    def reviews(self) -> list[dict[str, Any]]:
        """Return every stored human verdict, oldest first."""

        def work(session: Session) -> list[dict[str, Any]]:
            return [_review_json(r) for r in session.scalars(select(Review).order_by(Review.id))]

        return self._transact("reviews", work, write=False)

    def reviewed_flag_counts(self) -> dict[tuple[str, str], int]:
        """Return {(verdict, declared category): flags} of the flags humans confirmed or rejected."""

        def work(session: Session) -> dict[tuple[str, str], int]:
            rows = session.execute(
                select(Review.verdict, Review.declared_game_id, func.count())
                .where(Review.flag_id.is_not(None))
                .group_by(Review.verdict, Review.declared_game_id))
            return {(verdict, category): int(n) for verdict, category, n in rows}

        return self._transact("reviewed_flag_counts", work, write=False)


    def flags(self, include_closed: bool = False) -> list[dict[str, Any]]:
        """Return the open flags (and closed ones too if asked), newest first, in `flags --json` shape."""

        def work(session: Session) -> list[dict[str, Any]]:
            stmt = (
                select(Flag, Channel, Category.name)
                .join(Channel, Flag.channel_id == Channel.id)
                .outerjoin(Category, Category.id == Flag.predicted_game_id)
                .order_by(Flag.first_seen.desc(), Flag.id.desc())
            )
            if not include_closed:
                stmt = stmt.where(Flag.status == OPEN)
            return [_flag_json(flag, channel, name) for flag, channel, name in session.execute(stmt)]

        return self._transact("flags", work, write=False)

    def observations(self, login: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Return the latest observations, newest first, of one channel or of all."""

        def work(session: Session) -> list[dict[str, Any]]:
            stmt = (
                select(Observation, Channel)
                .join(Channel, Observation.channel_id == Channel.id)
                .order_by(Observation.checked_at.desc(), Observation.id.desc())
                .limit(limit)
            )
            if login is not None:
                stmt = stmt.where(Channel.login == login.strip().lower())
            return [_observation_json(row, channel) for row, channel in session.execute(stmt)]

        return self._transact("observations", work, write=False)

    def scored_checks(self, model_id: str, since: datetime) -> list[tuple[str, dict[str, float]]]:
        """Return (declared category, scores) of the completed checks `model_id` scored at or after `since`."""

        def work(session: Session) -> list[tuple[str, dict[str, float]]]:
            stmt = (
                select(Observation.declared_game_id, Observation.scores)
                .where(Observation.model_id == model_id, Observation.checked_at >= since,
                       Observation.outcome.in_([o.value for o in Outcome if o.completed]))
            )
            return [(declared, dict(scores or {})) for declared, scores in session.execute(stmt)]

        return self._transact("scored_checks", work, write=False)

    def checked_since(self, user_id: str, since: datetime) -> bool:
        """Return whether a check of the channel was recorded at or after `since` (a worker's retried job)."""

        def work(session: Session) -> bool:
            found = session.scalar(
                select(Observation.id)
                .where(Observation.channel_id == user_id, Observation.checked_at >= since)
                .limit(1))
            return found is not None

        return self._transact(f"checked_since {user_id}", work, write=False)

    # -- transactions -----------------------------------------------------------

    def _transact(
        self,
        what: str,
        work: Callable[[Session], T],
        *,
        write: bool,
        committed: Callable[[Session], Any] | None = None,
    ) -> T:
        """Run work in one transaction; retry once on a dropped connection."""
        factory = self._write if write else self._read
        for attempt in (1, 2):
            try:
                with factory.begin() as session:
                    if attempt == 2 and committed is not None:
                        found = committed(session)
                        if found is not _NOT_COMMITTED:
                            return found
                    return work(session)
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    log.warning("%s: database connection lost (%s); retrying once", what, _reason(exc))
                    continue
                raise StoreError(f"{what} failed on {safe_url(self.url)}: {_reason(exc)}") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"{what} failed on {safe_url(self.url)}: {_reason(exc)}") from exc
        raise AssertionError("unreachable")  # the loop returns or raises


# -- record ---------------------------------------------------------------------


def _record(session: Session, obs: CheckRecord, confirmations: int) -> FlagEvent | None:
    channel = _lock_channel(session, obs)
    session.add(_observation_row(obs))
    session.flush()
    open_flag = _open_flag(session, channel.id)
    state = ChannelState(channel.state_declared_game_id, channel.mismatch_streak, open_flag is not None)
    new, transition = step(state, obs.outcome, obs.declared_game_id or None, confirmations=confirmations)
    channel.state_declared_game_id, channel.mismatch_streak = new.declared_game_id, new.mismatch_streak
    flag = _apply(session, transition, open_flag, obs, new)
    if flag is None:
        return None
    session.flush()
    return FlagEvent(transition.action or "", _flag_json(flag, channel, _category_name(session, flag)),
                     transition.reason)


def _lock_channel(session: Session, obs: CheckRecord) -> Channel:
    """Insert the channel if new, then lock its row for the rest of the transaction."""
    table: Table = Channel.__table__  # type: ignore[assignment]
    # Twitch frees a login on rename and may give it to another account: the
    # stale row keeps a login that cannot collide with a real one.
    session.execute(
        update(table)
        .where(table.c.login == obs.user_login, table.c.id != obs.user_id)
        .values(login=table.c.login + "~" + table.c.id)
    )
    session.execute(
        _insert(session, table)
        .values(id=obs.user_id, login=obs.user_login, display_name=obs.display_name or obs.user_login,
                mismatch_streak=0)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    channel = session.scalars(select(Channel).where(Channel.id == obs.user_id).with_for_update()).one()
    channel.login = obs.user_login
    channel.display_name = obs.display_name or obs.user_login
    return channel


def _observation_row(record: CheckRecord) -> Observation:
    """Build the observations row of a record: its fields, less the channel's (see CHANNEL_FIELDS)."""
    values = record.values()
    channel_id = values["user_id"]
    for name in CHANNEL_FIELDS:
        del values[name]
    return Observation(channel_id=channel_id, **values)


def _open_flag(session: Session, channel_id: str) -> Flag | None:
    return session.scalars(select(Flag).where(Flag.channel_id == channel_id, Flag.status == OPEN)).first()


def _apply(
    session: Session, transition: Transition, open_flag: Flag | None, obs: CheckRecord, new: ChannelState
) -> Flag | None:
    if transition.action == "open":
        flag = Flag(
            channel_id=obs.user_id,
            declared_game_id=obs.declared_game_id,
            declared_game_name=obs.declared_game_name,
            first_seen=_streak_start(session, obs, new.mismatch_streak),
            checks=new.mismatch_streak,
            status=OPEN,
        )
        _set_prediction(flag, obs)
        session.add(flag)
        return flag
    if open_flag is None or transition.action is None:
        return None
    if transition.action == "extend":
        open_flag.checks += 1
        open_flag.declared_game_name = obs.declared_game_name
        _set_prediction(open_flag, obs)
    elif transition.action == "close":
        _close(open_flag, obs.checked_at, transition.reason)
    return open_flag


def _set_prediction(flag: Flag, obs: CheckRecord) -> None:
    flag.predicted_game_id = obs.predicted_game_id
    flag.predicted_label = obs.predicted_label
    flag.confidence = float(obs.confidence or 0.0)
    flag.last_seen = obs.checked_at


def _close(flag: Flag, when: datetime, reason: str) -> None:
    flag.status = CLOSED
    flag.closed_at = when
    flag.close_reason = reason


def _streak_start(session: Session, obs: CheckRecord, streak: int) -> datetime:
    """Return when the mismatch run that opens this flag began: its first check's time."""
    times = session.scalars(
        select(Observation.checked_at)
        .where(Observation.channel_id == obs.user_id, Observation.declared_game_id == obs.declared_game_id,
               Observation.outcome == Outcome.MISMATCH.value)
        .order_by(Observation.id.desc())
        .limit(max(1, streak))
    ).all()
    return min(times, default=obs.checked_at)


def _recorded_before(session: Session, obs: CheckRecord, confirmations: int) -> Any:
    """After a lost connection: find this check if its commit went through, and rebuild its event."""
    found = session.scalar(
        select(Observation.id).where(Observation.channel_id == obs.user_id, Observation.stream_id == obs.stream_id,
                                     Observation.checked_at == obs.checked_at)
    )
    if found is None:
        return _NOT_COMMITTED
    log.info("record %s: the first attempt had committed; not writing it twice", obs.user_login)
    flag = session.scalars(
        select(Flag)
        .where(Flag.channel_id == obs.user_id,
               or_(Flag.last_seen == obs.checked_at, Flag.closed_at == obs.checked_at))
        .order_by(Flag.id.desc())
    ).first()
    if flag is None:
        return None
    channel = session.get_one(Channel, obs.user_id)
    flag_json = _flag_json(flag, channel, _category_name(session, flag))
    if flag.closed_at == obs.checked_at:
        return FlagEvent("close", flag_json, flag.close_reason or "")
    # a flag opens with `confirmations` checks and grows by one per extend
    return FlagEvent("open" if flag.checks <= confirmations else "extend", flag_json)


# -- close_missing ----------------------------------------------------------------


def _close_missing(session: Session, category_id: str, live: set[str]) -> list[FlagEvent]:
    candidates = session.scalars(
        select(Flag.channel_id).where(Flag.status == OPEN, Flag.declared_game_id == category_id)
    ).all()
    gone = sorted(cid for cid in candidates if cid not in live)
    if not gone:
        return []
    # Lock in id order: two writers closing overlapping sets never deadlock.
    channels = session.scalars(
        select(Channel).where(Channel.id.in_(gone)).order_by(Channel.id).with_for_update()
    ).all()
    when = _now()
    events = []
    for channel in channels:
        flag = _open_flag(session, channel.id)
        if flag is None or flag.declared_game_id != category_id:
            continue  # closed or moved on by a concurrent check
        state = ChannelState(channel.state_declared_game_id, channel.mismatch_streak, True)
        # confirmations plays no part in an offline step
        new, transition = step(state, Outcome.OFFLINE, None, confirmations=1)
        channel.state_declared_game_id, channel.mismatch_streak = new.declared_game_id, new.mismatch_streak
        _close(flag, when, transition.reason)
        events.append(FlagEvent("close", _flag_json(flag, channel, _category_name(session, flag)),
                                transition.reason))
    return events


# -- review ---------------------------------------------------------------------


def _record_review(session: Session, row: ReviewRow) -> dict[str, Any] | None:
    flag = None
    if row.flag_id is not None:
        # The channel's row first, as `record` takes it: a check of this channel waits, then sees the close.
        channel_id = session.scalar(select(Flag.channel_id).where(Flag.id == row.flag_id))
        if channel_id is None:
            raise ReviewError(f"no flag {row.flag_id}: `twitchwatch review` lists the flags and queued checks")
        channel = session.scalars(select(Channel).where(Channel.id == channel_id).with_for_update()).one()
        flag = session.get_one(Flag, row.flag_id)
        done = session.scalars(select(Review).where(Review.flag_id == row.flag_id)).first()
        if done is not None:
            raise ReviewError(f"flag {row.flag_id} has a verdict already: {done.verdict} as {done.label} "
                              f"at {iso(done.reviewed_at)}")
    elif session.scalar(select(Review.id).where(Review.clip_id == row.clip_id)) is not None:
        raise ReviewError(f"queued check {row.clip_id} has a verdict already")
    now = _now()
    session.add(Review(flag_id=row.flag_id, clip_id=row.clip_id, channel_id=row.channel_id,
                       declared_game_id=row.declared_game_id, label=row.label, verdict=row.verdict,
                       clips=row.clips, reviewed_at=now))
    if flag is None:
        return None
    if row.verdict == REJECTED and flag.status == OPEN:
        _close(flag, now, REVIEW_CLOSE_REASON)
        # The model still sees what it saw: a new flag needs `confirmations` fresh mismatches, not one.
        channel.mismatch_streak = 0
    session.flush()
    return _flag_json(flag, channel, _category_name(session, flag))


def _review_json(review: Review) -> dict[str, Any]:
    return {
        "id": review.id, "flag_id": review.flag_id, "clip_id": review.clip_id, "channel_id": review.channel_id,
        "declared_game_id": review.declared_game_id, "label": review.label, "verdict": review.verdict,
        "clips": review.clips, "reviewed_at": iso(review.reviewed_at),
    }


# -- shapes ---------------------------------------------------------------------


def _insert(session: Session, table: Table) -> Insert:
    """Return the dialect's INSERT, which has on_conflict_* on both SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _category_name(session: Session, flag: Flag) -> str | None:
    if flag.predicted_game_id is None:
        return None
    category = session.get(Category, flag.predicted_game_id)
    return category.name if category else None


def _flag_json(flag: Flag, channel: Channel, category_name: str | None) -> dict[str, Any]:
    if flag.predicted_game_id is None:
        predicted_name = GAMEPLAY
    else:
        predicted_name = category_name or flag.predicted_game_id
    return {
        "id": flag.id,
        "user_login": channel.login,
        "user_id": channel.id,
        "declared_game_id": flag.declared_game_id,
        "declared_game_name": flag.declared_game_name,
        "predicted_game_id": flag.predicted_game_id,
        "predicted_game_name": predicted_name,
        "confidence": flag.confidence,
        "first_seen": iso(flag.first_seen),
        "last_seen": iso(flag.last_seen),
        "checks": flag.checks,
        "status": flag.status,
        "close_reason": flag.close_reason,
    }


def _observation_json(row: Observation, channel: Channel) -> dict[str, Any]:
    """Return a stored check as its record's JSON (the channel's current names), with the row's id."""
    columns = {name: getattr(row, name) for name in row.__table__.columns.keys()}
    record = CheckRecord.from_values(
        {**columns, "user_id": channel.id, "user_login": channel.login, "display_name": channel.display_name})
    return {"id": row.id, **record.to_json()}


def _reason(exc: BaseException) -> str:
    """Return the driver's message on one line, without SQLAlchemy's statement dump."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__

"""The booking service: its own SQLite database, and the outbox.

Every change to a booking and the event announcing it commit in one
transaction (O1): the event carries the booking's full current state, keyed
by its id, so the compacted ``bookings`` topic ends up holding the latest
state of every booking. A cancellation also asks the returns desk for a
refund, in the same transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from tidings import JSON
from tidings.outbox import Outbox, Relay, migrate

PRICE_PER_NIGHT = 120
COLUMNS = ("id", "guest", "hotel", "nights", "amount", "paid_with", "status", "version")
SCHEMA = """CREATE TABLE IF NOT EXISTS bookings (
    id TEXT PRIMARY KEY, guest TEXT NOT NULL, hotel TEXT NOT NULL, nights INTEGER NOT NULL,
    amount INTEGER NOT NULL, paid_with TEXT NOT NULL, status TEXT NOT NULL,
    version INTEGER NOT NULL)"""

Booking = dict[str, Any]


class BookingService:
    """Writes bookings to ``app.db``; ``outbox`` carries their events."""

    def __init__(self, path: str) -> None:
        self.url = f"sqlite:///{path}"
        migrate(self.url, {"bookings": 2})  # the outbox tables, 2 shards
        self.conn = sqlite3.connect(path, timeout=30)
        with self.conn:
            self.conn.execute(SCHEMA)
        self.outbox = Outbox("bookings", codec=JSON)

    def book(self, booking_id: str, guest: str, hotel: str, nights: int, paid_with: str) -> Booking:
        """A new booking and its event, in one transaction."""
        booking = {
            "id": booking_id, "guest": guest, "hotel": hotel, "nights": nights,
            "amount": nights * PRICE_PER_NIGHT, "paid_with": paid_with,
            "status": "confirmed", "version": 1,
        }  # fmt: skip
        with self.conn:
            self.conn.execute(f"INSERT INTO bookings VALUES ({', '.join('?' * 8)})",
                              [booking[c] for c in COLUMNS])  # fmt: skip
            self._announce(booking)
        return booking

    def extend(self, booking_id: str, nights: int) -> Booking:
        """The guest stays longer: new state, new version, new event."""
        with self.conn:
            booking = self._load(booking_id)
            booking.update(nights=nights, amount=nights * PRICE_PER_NIGHT)
            self._save(booking)
        return booking

    def cancel(self, booking_id: str) -> Booking:
        """Cancel, announce it, and queue the refund: all or nothing."""
        with self.conn:
            booking = self._load(booking_id)
            booking["status"] = "cancelled"
            self._save(booking)
            refund = {"booking": booking_id, "amount": booking["amount"],
                      "paid_with": booking["paid_with"]}  # fmt: skip
            self.outbox.add(self.conn, "queue:returns", refund, key=booking_id)
        return booking

    def all(self) -> dict[str, Booking]:
        """The source of truth: every booking's current state."""
        rows = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM bookings").fetchall()
        return {row[0]: dict(zip(COLUMNS, row)) for row in rows}

    def close(self) -> None:
        self.conn.close()

    def _load(self, booking_id: str) -> Booking:
        row = self.conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM bookings WHERE id = ?", (booking_id,)
        ).fetchone()
        return dict(zip(COLUMNS, row))

    def _save(self, booking: Booking) -> None:
        booking["version"] += 1
        self.conn.execute(
            "UPDATE bookings SET nights = ?, amount = ?, status = ?, version = ? WHERE id = ?",
            (booking["nights"], booking["amount"], booking["status"], booking["version"],
             booking["id"]),
        )  # fmt: skip
        self._announce(booking)

    def _announce(self, booking: Booking) -> None:
        # The full current state, keyed by id: compaction keeps the latest.
        self.outbox.add(self.conn, "topic:bookings", booking, key=booking["id"])


class RelayThread:
    """The relay, forwarding the outbox to the engine in the background."""

    def __init__(self, app_url: str, bus_url: str) -> None:
        self.relay = Relay(app_url, bus_url, outbox="bookings", poll_s=0.005)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.relay.run, args=(self.stop,), name="relay")

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop forwarding and give the shard leases up."""
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join()
        self.relay.close()

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class CentreLevel(StrEnum):
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"


# A centre's parent is one level up: township -> county -> city.
PARENT_LEVEL = {CentreLevel.COUNTY: CentreLevel.CITY, CentreLevel.TOWNSHIP: CentreLevel.COUNTY}


class TradingCentre(db.Model):
    __tablename__ = "trading_centre"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[TradingCentre | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[TradingCentre]] = relationship(back_populates="parent")

    def __repr__(self) -> str:
        return f"<TradingCentre {self.code}>"

    def ancestors(self) -> list[TradingCentre]:
        chain, node = [], self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

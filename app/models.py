"""Every model, imported once so that Alembic and the mappers see the whole schema."""

from app.accounts.models import ApiToken, User  # noqa: F401
from app.audit.models import AuditEvent  # noqa: F401
from app.bids.models import Bid, UploadSession  # noqa: F401
from app.centres.models import TradingCentre  # noqa: F401
from app.clock.models import ClockAlert, ClockStep  # noqa: F401
from app.companies.models import Company, CompanyAlias, CompanyCertificate  # noqa: F401
from app.custody.models import CustodianKey, KeyShare, TenderKey  # noqa: F401
from app.evaluations.models import Evaluation, ScoreSheet, TechnicalScore  # noqa: F401
from app.opening.models import (  # noqa: F401
    EvaluatedBid,
    OpeningLine,
    OpeningSession,
    ShareUnlock,
    TechnicalSource,
)
from app.panels.models import (  # noqa: F401
    ExpertProfile,
    ExpertRelationship,
    PanelDraw,
    PanelMember,
)
from app.records.models import EvaluationRecord, RecordSignature, SigningCertificate  # noqa: F401
from app.results.models import Objection, ResultLetter, ResultNotice  # noqa: F401
from app.supervision.flag_models import FlagRun, RedFlag  # noqa: F401
from app.tenders.models import (  # noqa: F401
    Addendum,
    BondRecord,
    DocumentDownload,
    Enquiry,
    Lot,
    Notification,
    TemplateVersion,
    Tender,
    TenderCustodian,
    TenderDocument,
    TenderRegistration,
    TenderTemplate,
)
from app.tenders.suspension import TenderSuspension  # noqa: F401

"""Long lists page, and the pager keeps the list's filter."""

from __future__ import annotations

from app.accounts.models import Role
from app.companies.models import CompanyStatus


def test_company_list_pages_and_keeps_the_filter(
    client, auth, make_user, make_centre, make_company
):
    centre = make_centre()
    for _ in range(27):
        make_company(centre=centre, status=CompanyStatus.PENDING)
    auth.login(make_user(Role.STAFF, centre=centre))
    first = client.get("/centre/companies/?status=pending").data.decode()
    assert "Page 1 of 2" in first
    assert "/centre/companies/?page=2&amp;status=pending" in first
    second = client.get("/centre/companies/?status=pending&page=2").data.decode()
    assert "Page 2 of 2" in second and "page=1" in second
    assert second.count("<tr>") == 1 + 2  # header row and the last two companies

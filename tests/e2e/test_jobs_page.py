import pytest

from apps.common.models import Job


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_updates_job_progress_without_reload(staff_page, live_server):
    job = Job.objects.create(kind="common.demo", state="running", progress=10, message="starting")
    staff_page.goto(f"{live_server.url}/jobs/")
    row = staff_page.locator(f"tr[data-job='{job.pk}']")
    assert "10%" in row.inner_text()
    staff_page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    Job.objects.filter(pk=job.pk).update(progress=75, message="three quarters")
    staff_page.wait_for_function(  # a function, not a string: the page's CSP forbids eval
        f"() => document.querySelector(\"tr[data-job='{job.pk}']\").innerText.includes('75%')", timeout=10_000
    )
    assert staff_page.evaluate("window.__marker") == 1

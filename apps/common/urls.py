from django.urls import path, re_path

from apps.common import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/", views.jobs_page, name="jobs"),
    path("jobs/table/", views.jobs_table, name="jobs-table"),
    path("jobs/<id:pk>/", views.job_detail, name="job-detail"),
    path("jobs/demo/", views.start_demo_job, name="jobs-demo"),
    path("tokens/", views.tokens_page, name="tokens"),
    path("tokens/<id:pk>/revoke/", views.revoke_token, name="token-revoke"),
    path("account/", views.account_page, name="account"),
    path("healthz", views.healthz, name="healthz"),
    path("api/jobs/", api.JobList.as_view(), name="api-jobs"),
    path("api/jobs/<id:pk>/", api.JobDetail.as_view(), name="api-job"),
    re_path(r"^api/(?P<app>support|sentiment|recommend)/status/$", api.AppStatus.as_view(), name="api-app-status"),
]

from django.urls import path

from apps.recommend import views

app_name = "recommend"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]

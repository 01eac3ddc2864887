from django.urls import path

from apps.recommend import api, views

app_name = "recommend"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("user/", views.user_lookup, name="user-lookup"),
    path("item/", views.item_lookup, name="item-lookup"),
    path("train/", views.start_training, name="train"),
    path("upload/", views.upload_catalogue, name="upload"),
    path("api/items/", api.ItemsView.as_view(), name="api-items"),
    path("api/items/upload/", api.CatalogueUploadView.as_view(), name="api-items-upload"),
    path("api/items/<str:external_id>/", api.ItemRemoveView.as_view(), name="api-item"),
    path("api/items/<str:external_id>/similar/", api.SimilarItemsView.as_view(), name="api-item-similar"),
    path("api/events/", api.EventsView.as_view(), name="api-events"),
    path("api/recommend/", api.RecommendView.as_view(), name="api-recommend"),
    path("api/score/", api.ScoreView.as_view(), name="api-score"),
    path("api/train/", api.TrainView.as_view(), name="api-train"),
    path("api/model/", api.ModelView.as_view(), name="api-model"),
]

from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("refused/", views.refused, name="refused"),
    path("users/", views.users, name="users"),
    path("users/<int:user_id>/role/", views.change_role, name="change_role"),
    path("users/<int:user_id>/active/", views.set_active, name="set_active"),
    path("users/<int:user_id>/unlock/", views.unlock, name="unlock"),
    path("profile/", views.profile, name="profile"),
    path("profile/timezone/", views.set_timezone, name="set_timezone"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/new/", views.create_token, name="create_token"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
]

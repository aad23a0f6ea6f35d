from django.urls import path, re_path

from web.views import alerts, configuration, drills, home, incidents, items, notifications, published, reports
from web.views import service_levels as service_level_pages

app_name = "web"
SECTIONS = "|".join(configuration.SECTIONS)
urlpatterns = [
    path("", home.HomeView.as_view(), name="home"),
    path("incidents/", incidents.IncidentListView.as_view(), name="incident-list"),
    path("incidents/export.csv", incidents.IncidentExportView.as_view(), name="incident-export"),
    path("incidents/import/", incidents.IncidentImportView.as_view(), name="incident-import"),
    path("incidents/new/", incidents.IncidentLogView.as_view(), name="incident-log"),
    path("incidents/new/past/", incidents.IncidentLogView.as_view(past=True), name="incident-log-past"),
    path("incidents/level-suggestion/", incidents.SeverityPreviewView.as_view(), name="level-suggestion"),
    path("incidents/<int:pk>/", incidents.IncidentDetailView.as_view(), name="incident-detail"),
    path("incidents/<int:pk>/edit/", incidents.IncidentEditView.as_view(), name="incident-edit"),
    path("incidents/<int:pk>/status/", incidents.IncidentTransitionView.as_view(), name="incident-transition"),
    path("incidents/<int:pk>/notes/", incidents.IncidentNoteView.as_view(), name="incident-note"),
    path("incidents/<int:pk>/level/", incidents.IncidentOverrideView.as_view(), name="incident-override"),
    path("incidents/<int:pk>/items/", items.ItemCreateView.as_view(), name="item-create"),
    path("items/<int:item_pk>/step/", items.ItemStepView.as_view(), name="item-step"),
    path("items/<int:item_pk>/assign/", items.ItemAssignView.as_view(), name="item-assign"),
    path("items/new/", items.ItemNewView.as_view(), name="item-new"),
    path("items/<int:item_pk>/", items.ItemDetailView.as_view(), name="item-detail"),
    path("items/mine/", items.ItemListView.as_view(mine=True), name="items-mine"),
    path("items/team/", items.ItemListView.as_view(mine=False), name="items-team"),
    path("drills/", drills.DrillListView.as_view(), name="drill-list"),
    path("drills/new/", drills.DrillNewView.as_view(), name="drill-new"),
    path("drills/<int:pk>/", drills.DrillDetailView.as_view(), name="drill-detail"),
    path("drills/<int:pk>/outcome/", drills.DrillHoldView.as_view(), name="drill-hold"),
    path("drills/<int:pk>/items/", drills.DrillFindingView.as_view(), name="drill-finding"),
    path("alerts/", alerts.AlertInboxView.as_view(), name="alert-inbox"),
    path("alerts/follow-up/", alerts.AlertFollowUpView.as_view(), name="alert-follow-up"),
    path("alerts/missed/", alerts.MissedAlertsView.as_view(), name="alerts-missed"),
    path("alerts/<int:pk>/", alerts.AlertDetailView.as_view(), name="alert-detail"),
    path("reports/", reports.ReportView.as_view(), name="reports"),
    path("reports/pdf/", reports.ReportPdfView.as_view(), name="report-pdf"),
    path("reports/publish/", published.PublishView.as_view(), name="report-publish"),
    path("reports/published/", published.PublishedListView.as_view(), name="published-reports"),
    path("reports/published/<int:pk>/", published.PublishedReportView.as_view(), name="published-report"),
    path("reports/published/<int:pk>/pdf/", published.PublishedPdfView.as_view(), name="published-report-pdf"),
    path("notifications/", notifications.NotificationLogView.as_view(), name="notification-log"),
    path("notifications/<int:pk>/retry/", notifications.NotificationRetryView.as_view(), name="notification-retry"),
    path("settings/", configuration.ConfigurationIndexView.as_view(), name="configuration"),
    path("settings/severity-policy/", configuration.SeverityPolicyView.as_view(), name="configuration-policy"),
    re_path(rf"^settings/(?P<name>{SECTIONS})/$", configuration.SectionView.as_view(), name="configuration-section"),
    re_path(
        rf"^settings/(?P<name>{SECTIONS})/(?P<key>[-\w]+)/$",
        configuration.ItemView.as_view(),
        name="configuration-item",
    ),
    path("service-levels/", service_level_pages.ServiceLevelsView.as_view(), name="service-levels"),
    path(
        "service-levels/systems/<slug:code>/",
        service_level_pages.SystemServiceLevelsView.as_view(),
        name="service-level-system",
    ),
    path(
        "service-levels/indicators/<int:pk>/",
        service_level_pages.IndicatorView.as_view(),
        name="service-level-indicator",
    ),
    path(
        "settings/service-levels/",
        service_level_pages.ServiceLevelSettingsView.as_view(),
        name="service-level-settings",
    ),
    re_path(
        r"^settings/service-levels/(?P<kind>sources|indicators)/new/$",
        service_level_pages.ServiceLevelRecordView.as_view(),
        name="service-level-new",
    ),
    re_path(
        r"^settings/service-levels/(?P<kind>sources|indicators)/(?P<pk>\d+)/$",
        service_level_pages.ServiceLevelRecordView.as_view(),
        name="service-level-record",
    ),
]

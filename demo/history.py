"""A realistic year of records at scale: the data set of the monthly report's benchmark.

`manage.py generate_history` calls generate_history(). It writes teams with their people, systems,
one alert integration per team, incidents with their systems and timelines, closed-loop items, alert
occurrences and the people's follow-ups, as the product's own paths would have written them:

- incidents start in the window (busier in the working day of TIME_ZONE), mostly levels D and C, few
  B, rare A. The level is NOT drawn: facts are drawn (tier, minutes of impact, users, transactions,
  funds loss, flags) and classified by incidents.severity under the current policy, as
  incidents.services does, so level, matched conditions, policy version and recovery target agree;
- detection mostly by monitoring (detected within minutes), some by customers (later, sometimes
  after recovery), inspection, banks; responders engage within minutes; resolution follows recovery;
- closed-loop items with due dates, most completed on time, some late, some overdue, a few waived;
  an incident is closed (with its review) only once every item of it is verified or waived;
- alert occurrences of rules per system (alert names of the seeds: 支付成功率下降, 银行通道超时 ...),
  received through each team's integration, mostly followed up within 5 minutes, some late, some
  never; a few silenced or in maintenance; those that revealed a monitoring-detected incident are
  linked to it. Every follow-up has its activity row.

Consequences (recovery, follow-ups, completions) never lie after `now`; an incident still burning
at `now` is left open. Everything is written in one transaction. Teams, people and systems are
few; the integrations are made by stability.services. The rest goes through the bulk loads of the
owning apps (incidents.bulk, stability.bulk: COPY on PostgreSQL, batched INSERTs elsewhere), which
store rows as given: this module computes what the services would have (level and explanation,
status, version, timeline rows, follow-up activities) and refreshes the follow-up day counts after.
Same seed and scale, same records.
"""

import hashlib
import heapq
import json
import math
import pickle
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from typing import IO, NamedTuple

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone, translation

from accounts.models import Role, User
from incidents import periods, severity
from incidents.bulk import (
    action_items_bulk_load,
    ids_reserve,
    incident_systems_bulk_load,
    incidents_bulk_load,
    reviews_bulk_load,
    timeline_entries_bulk_load,
)
from incidents.models import (
    TIER_RANK,
    ActionItem,
    CauseCategory,
    DetectionSource,
    Incident,
    Level,
    Status,
    System,
    Team,
    Tier,
    TimelineEntry,
)
from incidents.selectors import current_severity_policy
from incidents.services import system_create, team_create
from stability import follow_up
from stability.bulk import alert_follow_up_activities_bulk_load, alert_occurrences_bulk_load
from stability.models import AlertActivity, AlertDayCount, AlertOccurrence, Integration
from stability.services import integration_create

Progress = Callable[[str, int, int], None]  # phase, rows done, rows in the phase


@dataclass(frozen=True)
class Scale:
    teams: int = 20
    systems: int = 200
    incidents: int = 20_000
    items: int = 50_000
    alerts: int = 1_000_000


class HistoryRefused(Exception):
    """The database is not one to generate into (it already holds incidents, or no severity policy)."""


def history_window(*, year: int | None, now: datetime) -> periods.Period:
    """--year Y: that calendar year of TIME_ZONE. Default: from the 1st of the month twelve months
    before the current one, so the last twelve whole months are complete, plus this month so far.
    Either way it ends at `now` at the latest."""
    if year is not None:
        window = periods.year(year)
    else:
        local = timezone.localtime(now).date()
        first = date(local.year - 1, local.month, 1)
        window = periods.date_range(first, local)
    if window.start >= now:
        raise HistoryRefused(f"The window {window.label} starts after now: nothing to generate.")
    return periods.Period(window.kind, window.start, min(window.end, now))


# --- vocabulary (the seeds' own words) --------------------------------------------------------------

TEAMS = (
    ("payments", "Payments (支付)"),
    ("cashier", "Cashier (收银台)"),
    ("accounts", "Accounts (账户)"),
    ("bank-channels", "Bank channels (银行通道)"),
    ("settlement", "Settlement (清结算)"),
    ("bills", "Bills (账单)"),
    ("merchants", "Merchants (商户)"),
    ("custody", "Custody (存管)"),
    ("risk-aml", "Risk and AML (风控反洗钱)"),
    ("wallet", "Business wallet (企业钱包)"),
    ("pos", "POS acquiring (POS收单)"),
    ("payout", "Payout (出金)"),
    ("collection", "Collection (入金)"),
    ("fulfilment", "Fulfilment (履约)"),
    ("split", "Split payments (分账)"),
    ("bank-enterprise", "Bank-enterprise link (银企直连)"),
    ("big-data", "Big data (大数据)"),
    ("reconciliation", "Reconciliation (对账)"),
    ("store-wallet", "Store wallet (门店钱包)"),
    ("ops-console", "Back office (运营后台)"),
)
SYSTEMS = (
    ("cashier", "收银台"),
    ("aggregate-pay", "聚合支付"),
    ("payout", "出金"),
    ("collection", "入金"),
    ("agent-pay", "代付"),
    ("account-core", "账户核心"),
    ("ledger", "记账"),
    ("bill-service", "账单服务"),
    ("fee-bill", "手续费账单"),
    ("bank-gateway", "银行前置"),
    ("bank-statement", "银行流水"),
    ("front-end-machine", "前置机"),
    ("clearing", "清分结算"),
    ("d0-settlement", "D0结算"),
    ("reconciliation", "对账"),
    ("error-handling", "差错处理"),
    ("merchant-portal", "商户门户"),
    ("merchant-onboarding", "商户进件"),
    ("wallet-h5", "企业钱包H5"),
    ("pos-terminal", "POS终端管理"),
    ("aml", "反洗钱"),
    ("risk-engine", "风控引擎"),
    ("pay-routing", "支付路由"),
    ("trade-query", "交易查询"),
    ("callback", "回调通知"),
    ("agreement", "协议平台"),
    ("contract", "合同管理"),
    ("hsm", "加密机"),
    ("ops-console", "运营后台"),
    ("data-warehouse", "数据仓库"),
)
ALERT_NAMES = (
    "支付成功率下降",
    "银行通道超时",
    "手续费账单缺失",
    "出金成功率下降",
    "入金有效成功率下降",
    "一次支付成功率下降",
    "前置机自动签退",
    "银行流水获取延迟",
    "流水数据格式异常",
    "接口响应超时",
    "数据库慢SQL",
    "数据库连接池耗尽",
    "MQ消息堆积",
    "回调通知失败",
    "对账差错账增多",
    "账单产出延迟",
    "交易量突降",
    "5xx错误率升高",
    "加密机响应慢",
    "Redis延迟升高",
    "CPU使用率过高",
    "磁盘空间不足",
    "证书即将过期",
    "JVM Full GC频繁",
)
INCIDENT_TITLES = {
    CauseCategory.CODE_CHANGE: ("新版本发布后{s}报错率升高", "{s}上线后接口超时", "{s}唤起支付失败"),
    CauseCategory.CONFIG_CHANGE: ("{s}配置变更导致路由错误", "{s}限额配置被误改", "{s}开关误关闭"),
    CauseCategory.CAPACITY: ("{s}慢SQL拖慢查询", "{s}数据库连接池耗尽", "交易高峰{s}响应变慢"),
    CauseCategory.INFRASTRUCTURE: ("{s}所在机房网络抖动", "{s}数据库主从切换", "{s}容器节点宕机"),
    CauseCategory.THIRD_PARTY: (
        "银行通道超时导致{s}失败率升高",
        "前置机自动签退导致{s}流水获取延迟",
        "银行修改日切时间导致{s}流水格式差异",
        "三方设备误升级导致{s}交易异常",
    ),
    CauseCategory.DATA: ("{s}手续费账单缺失{n}条", "{s}对账文件解析失败，差错账{n}笔", "{s}账单数据异常{n}条"),
    CauseCategory.SECURITY: ("{s}配置被篡改", "{s}证书过期导致握手失败"),
    CauseCategory.UNKNOWN: ("{s}支付成功率下降", "{s}偶发超时"),
}
CAUSES = {
    CauseCategory.CODE_CHANGE: "新版本代码缺陷，灰度未覆盖该场景",
    CauseCategory.CONFIG_CHANGE: "配置变更未经评审，误改生产参数",
    CauseCategory.CAPACITY: "大表查询未命中索引，数据库资源被占满",
    CauseCategory.INFRASTRUCTURE: "底层网络或节点故障",
    CauseCategory.THIRD_PARTY: "银行或三方侧变更未提前通知",
    CauseCategory.DATA: "字段可为空的处理变更导致数据主键异常",
    CauseCategory.SECURITY: "权限管控缺失，生产配置被修改",
    CauseCategory.UNKNOWN: "原因排查中",
}
HANDLINGS = (
    "回滚版本后恢复",
    "切换备用通道后恢复",
    "重新签到前置机，流水获取成功",
    "扩容并下线问题查询入口",
    "修复异常数据并同步资金平台，业务对账验收完毕",
    "降级至稳定版本",
    "主备切换后恢复",
)
ITEM_TITLES = {
    ActionItem.Kind.FIX: "修复{s}问题根因",
    ActionItem.Kind.MONITORING: "补充{s}{a}监控告警",
    ActionItem.Kind.DRILL: "{s}应急切换演练",
    ActionItem.Kind.TEST_CASE: "补充{s}必测用例",
    ActionItem.Kind.PROCESS: "完善{s}变更评审与灰度流程",
    ActionItem.Kind.OTHER: "{s}架构Review",
}
SURNAMES = (("wang", "王"), ("li", "李"), ("zhang", "张"), ("liu", "刘"), ("chen", "陈"), ("yang", "杨"))
SURNAMES += (("zhao", "赵"), ("huang", "黄"), ("zhou", "周"), ("wu", "吴"), ("xu", "徐"), ("sun", "孙"))
GIVEN = (("wei", "伟"), ("min", "敏"), ("jie", "杰"), ("peng", "鹏"), ("lei", "磊"), ("na", "娜"), ("fang", "芳"))
GIVEN += (("jun", "军"), ("tao", "涛"), ("ying", "颖"), ("hui", "慧"), ("qiang", "强"), ("yan", "燕"), ("bo", "波"))

# Relative frequency by local hour: incidents and alerts follow the working day and its changes.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 7, 7, 8, 8, 8, 7, 6, 6, 6, 5, 4, 3)
TIER_WEIGHTS = {Tier.P0: 10, Tier.P1: 25, Tier.P2: 40, Tier.P3: 25}
TARGETS = {Tier.P0: ("99.99", "99.995"), Tier.P1: ("99.95", "99.9"), Tier.P2: ("99.9", "99.5"), Tier.P3: ("99.5",)}
# Wanted level shares before classification; the policy has the last word.
LEVEL_WEIGHTS = {Level.D: 56, Level.C: 33, Level.B: 9, Level.A: 2}
SOURCE_WEIGHTS = {
    DetectionSource.MONITORING: 70,
    DetectionSource.CUSTOMER: 15,
    DetectionSource.INSPECTION: 8,
    DetectionSource.THIRD_PARTY: 5,
    DetectionSource.OTHER: 2,
}
# Median minutes from impact to detection, by source (log-normal).
DETECTION_MINUTES = {
    DetectionSource.MONITORING: 2,
    DetectionSource.CUSTOMER: 60,
    DetectionSource.INSPECTION: 180,
    DetectionSource.THIRD_PARTY: 30,
    DetectionSource.OTHER: 30,
}
CAUSE_WEIGHTS = {
    CauseCategory.CODE_CHANGE: 30,
    CauseCategory.CONFIG_CHANGE: 15,
    CauseCategory.CAPACITY: 10,
    CauseCategory.INFRASTRUCTURE: 12,
    CauseCategory.THIRD_PARTY: 15,
    CauseCategory.DATA: 10,
    CauseCategory.SECURITY: 1,
    CauseCategory.UNKNOWN: 7,
}
ITEMS_PER_LEVEL = {Level.A: 6, Level.B: 4, Level.C: 3, Level.D: 1}  # relative share of the items
CLOSE_AFTER = timedelta(days=14)  # resolved incidents are closed (with their review) after about this
REPEAT_INTERVAL = 4 * 3600  # Alertmanager repeat_interval: a firing alert is notified again
MINUTE, HOUR, DAY = 60, 3600, 86_400


def _weighted(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0, sigma))


def _at(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


# --- the plan of the world -------------------------------------------------------------------------


@dataclass
class _Team:
    team: Team
    integration: Integration
    members: list[int]  # user ids
    manager: int
    follow_up_discipline: float  # share of its counted alerts followed up within 5 minutes
    systems: list["_System"] = field(default_factory=list)


@dataclass
class _System:
    pk: int
    code: str
    label: str  # Chinese name
    tier: str
    team: _Team


@dataclass
class _Incident:
    pk: int
    team: _Team
    systems: list[_System]
    occurred: int  # epoch seconds
    detected: int
    source: str
    cause: str
    title: str
    level: str
    matches: list
    responded: int | None = None
    recovered: int | None = None
    resolved: int | None = None
    closed: int | None = None
    created: int = 0
    owner: int = 0
    users: int = 0
    transactions: int = 0
    funds_loss: Decimal = Decimal(0)
    breach: bool = False
    reportable: bool = False
    availability_impact: Decimal | None = None
    items: list["_Item"] = field(default_factory=list)


@dataclass
class _Item:
    pk: int
    incident: _Incident
    kind: str
    title: str
    priority: str
    owner: int
    verifier: int
    created: int
    due: int
    status: str = ActionItem.Status.OPEN
    started: int | None = None
    completed: int | None = None
    verified: int | None = None
    waived: int | None = None
    waived_by: int | None = None

    @property
    def last_change(self) -> int:
        return max(t for t in (self.created, self.started, self.completed, self.verified, self.waived) if t)


class _Rule(NamedTuple):
    """An alert rule firing on a system; labels and annotations as JSON text, as they are stored."""

    system: _System
    weight: float  # how often it fires, relative to the other rules
    alertname: str
    severity: str
    fingerprint: str
    labels: str
    annotations: str
    summary: str
    url: str


class _Notifications(NamedTuple):
    """An occurrence as its notifications left it: status, how many, the last one's time."""

    status: str
    notifications: int
    last: int
    resolved_at: int | None = None
    ends_at: int | None = None


def _entry(
    incident: _Incident,
    kind: str,
    at: datetime,
    *,
    author: int | None = None,
    item: int | None = None,
    field: str = "",
    old: str = "",
    new: str = "",
    text: str = "",
    data: dict | None = None,
) -> dict:
    """A timeline row of `incident` as the services write it (by its owner unless `author`)."""
    return {
        "incident": incident.pk,
        "kind": kind,
        "at": at,
        "author": incident.owner if author is None else author,
        "action_item": item,
        "field": field,
        "old_value": old,
        "new_value": new,
        "text": text,
        "data": json.dumps(data or {}, ensure_ascii=False),
        "created_at": at,
    }


class _FreeNames:
    """Names not yet taken in the database or by this run: a second "payments" team (--append) becomes
    "payments-2", a second wei.wang "wei.wang.2"."""

    def __init__(self) -> None:
        self.taken = {
            "slug": set(Team.objects.values_list("slug", flat=True)),
            "team": set(Team.objects.values_list("name", flat=True)),
            "code": set(System.objects.values_list("code", flat=True)),
            "username": set(User.objects.values_list("username", flat=True)),
            "integration": set(Integration.objects.values_list("name", flat=True)),
        }

    def take(self, kind: str, candidate: str, sep: str = "-") -> str:
        taken = self.taken[kind]
        name, n = candidate, 1
        while name in taken:
            n += 1
            name = f"{candidate}{sep}{n}"
        taken.add(name)
        return name


class _History:
    def __init__(self, *, window: periods.Period, scale: Scale, seed: int, now: datetime, progress: Progress):
        self.rng = random.Random(seed)
        self.scale = scale
        self.start = int(window.start.timestamp())
        self.end = int(window.end.timestamp())
        self.now = int(now.timestamp())
        self.offset = int(timezone.localtime(window.start).utcoffset().total_seconds())
        self.progress = progress
        self.policy = current_severity_policy()
        if self.policy is None:
            raise HistoryRefused("No severity policy: run `manage.py migrate` first.")
        self.counts: dict[str, int] = {}
        self.tier_minutes: dict[str, dict[str, int]] = {}

    # -- time --------------------------------------------------------------------------------------

    def moment(self) -> int:
        """A second of the window, busier in the local working day (rejection sampling)."""
        span = self.end - self.start
        while True:
            t = self.start + self.rng.randrange(span)
            if self.rng.random() * 8 < HOUR_WEIGHTS[(t + self.offset) // HOUR % 24]:
                return t

    def by_now(self, t: int | None) -> int | None:
        """A consequence that would lie after now has not happened yet."""
        return t if t is not None and t <= self.now else None

    # -- people, teams, systems, integrations -------------------------------------------------------

    def organisation(self) -> list[_Team]:
        """Per team a manager and five engineers, the team, its integration; then the systems. Through
        incidents.services and stability.services, but the people (accounts has no service to create
        users): they are few, and the services validate each record as the settings pages do."""
        scale = self.scale
        self.progress("organisation", 0, scale.teams * 7 + scale.systems)
        names = _FreeNames()
        people = self._people(scale.teams, names)
        planned = []
        for index in range(scale.teams):
            manager, engineers = people[6 * index], people[6 * index + 1 : 6 * index + 6]
            slug, name = TEAMS[index % len(TEAMS)]
            team = team_create(
                slug=names.take("slug", slug), name=names.take("team", name, " "), managers=[manager], members=engineers
            )
            integration, _token = integration_create(
                kind=Integration.Kind.ALERTMANAGER,
                name=names.take("integration", f"{team.slug}-alertmanager"),
                default_team=team,
            )
            planned.append(
                _Team(
                    team=team,
                    integration=integration,
                    members=[u.pk for u in engineers],
                    manager=manager.pk,
                    follow_up_discipline=self.rng.uniform(0.72, 0.97),
                )
            )
        self.counts.update(teams=len(planned), users=len(people), members=5 * len(planned))
        self._systems(planned, names)
        self.counts["integrations"] = len(planned)
        self.progress("organisation", scale.teams * 7 + scale.systems, scale.teams * 7 + scale.systems)
        return planned

    def _people(self, teams: int, names: _FreeNames) -> list[User]:
        """Per team a manager, then five engineers (in that order in the list)."""
        rng = self.rng
        password = make_password(None)  # unusable: generated people sign in only if an admin sets one
        people = []
        for _index in range(teams):
            for position in range(6):
                surname, surname_cn = rng.choice(SURNAMES)
                given, given_cn = rng.choice(GIVEN)
                username = names.take("username", f"{given}.{surname}", ".")
                people.append(
                    User(
                        username=username,
                        first_name=given_cn,
                        last_name=surname_cn,
                        email=f"{username}@example.com",
                        role=Role.MANAGER if position == 0 else Role.ENGINEER,
                        password=password,
                    )
                )
        return User.objects.bulk_create(people)

    def _systems(self, teams: list[_Team], names: _FreeNames) -> None:
        """Every team has a system; the rest go to teams at random."""
        rng, scale = self.rng, self.scale
        owners = list(range(scale.teams)) + [rng.randrange(scale.teams) for _ in range(scale.systems - scale.teams)]
        for n, team_index in enumerate(owners):
            code, label = SYSTEMS[n % len(SYSTEMS)]
            tier = _weighted(rng, TIER_WEIGHTS)
            team = teams[team_index]
            system = system_create(
                code=names.take("code", code),
                name=f"{label} ({code})",
                tier=tier,
                team=team.team,
                availability_target=Decimal(rng.choice(TARGETS[tier])),
                description=label,
            )
            team.systems.append(_System(pk=system.pk, code=system.code, label=label, tier=tier, team=team))
        self.counts["systems"] = len(owners)

    # -- incidents ---------------------------------------------------------------------------------

    def _tier_minutes(self, tier: str) -> dict[str, int]:
        """The policy's tier rules for a system of `tier`: the impact minutes that reach each level."""
        minutes = {}
        for level, conditions in self.policy.rules.items():
            reaching = [
                c["minutes"]
                for c in conditions
                if c["kind"] == "tier_impact" and TIER_RANK[tier] <= TIER_RANK[c["tier"]]
            ]
            if reaching:
                minutes[level] = min(reaching)
        return minutes

    def _facts(self, *, wanted: str, tier: str) -> tuple[int, dict]:
        """Minutes of impact and impact facts that make the policy likely to give `wanted` to an incident
        on a system of `tier`; the classification decides."""
        rng = self.rng
        if tier not in self.tier_minutes:
            self.tier_minutes[tier] = self._tier_minutes(tier)
        tier_minutes = self.tier_minutes[tier]
        above = {Level.D: Level.C, Level.C: Level.B, Level.B: Level.A}.get(wanted)
        # Stay below the impact minutes of the next level's tier rule, so that the facts decide.
        limit = tier_minutes.get(above, 3 * 24 * 60) if above else 3 * 24 * 60
        if wanted == Level.D:
            minutes = int(_lognormal(rng, 12 if tier_minutes else 60, 0.9 if tier_minutes else 1.5))
            facts = {
                "affected_users": rng.choice((0, 0, rng.randrange(200))),
                "affected_transactions": rng.randrange(300),
            }
            return max(1, min(minutes, limit - 1)), facts
        floor = tier_minutes.get(wanted)
        if floor is not None and rng.random() < 0.75:  # the outage itself is what counts
            return rng.randrange(floor, max(min(limit, 3 * floor), floor + 1)), {}
        minutes = max(1, min(int(_lognormal(rng, 25, 1.2)), limit - 1))
        conditions = [c for c in self.policy.rules.get(wanted, []) if c["kind"] != "tier_impact"]
        if not conditions:
            return minutes, {}
        condition = rng.choice(conditions)
        if condition["kind"] == "flag":
            return minutes, {condition["flag"]: True}
        if condition["kind"] == "funds_loss":
            amount = Decimal(condition["at_least"]) * Decimal(rng.randrange(100, 300)) / 100
            return minutes, {"funds_loss": amount.quantize(Decimal("0.01"))}
        return minutes, {condition["kind"]: int(condition["at_least"] * rng.uniform(1, 3))}

    def incidents(self, teams: list[_Team]) -> list[_Incident]:
        rng = self.rng
        systems = [s for t in teams for s in t.systems]
        # Some systems are far more incident-prone than others.
        cumulative, total = [], 0.0
        for system in systems:
            total += _lognormal(rng, 1, 0.8) * (1.5 if system.tier in (Tier.P0, Tier.P1) else 1)
            cumulative.append(total)
        ids = ids_reserve(model=Incident, count=self.scale.incidents)
        planned = []
        self.progress("planning incidents", 0, len(ids))
        for pk in ids:
            if len(planned) % 5_000 == 0:
                self.progress("planning incidents", len(planned), len(ids))
            planned.append(self._incident(pk, rng.choices(systems, cum_weights=cumulative)[0]))
        self.progress("planning incidents", len(planned), len(planned))
        self.counts["incidents"] = len(planned)
        return planned

    def _incident(self, pk: int, system: _System) -> _Incident:
        """One incident starting on `system` (sometimes a second system of its team too): its facts drawn
        for a level, then classified; detection by its source; recovery after the facts' minutes."""
        rng = self.rng
        impacted = [system]
        if rng.random() < 0.12 and len(system.team.systems) > 1:
            other = rng.choice(system.team.systems)
            impacted += [other] if other is not system else []
        tier = severity.most_critical_tier(s.tier for s in impacted)
        minutes, facts = self._facts(wanted=_weighted(rng, LEVEL_WEIGHTS), tier=tier)
        occurred = self.moment()
        cause = _weighted(rng, CAUSE_WEIGHTS)
        source = self._detection_source(cause)
        if source == DetectionSource.MONITORING:
            detected = occurred + int(rng.expovariate(1 / 90))
        else:
            detected = occurred + int(_lognormal(rng, DETECTION_MINUTES[source] * MINUTE, 0.9))
        detected = min(detected, self.now)
        recovered = self.by_now(occurred + minutes * MINUTE + rng.randrange(MINUTE))
        title = rng.choice(INCIDENT_TITLES[cause]).format(s=system.label, n=rng.randrange(12, 3000))
        result = self._classify(tier=tier, occurred=occurred, recovered=recovered, facts=facts)
        incident = _Incident(
            pk=pk,
            team=system.team,
            systems=impacted,
            occurred=occurred,
            detected=detected,
            source=source,
            cause=cause,
            title=title,
            level=result.level,
            matches=result.matches,
            users=facts.get("affected_users", 0),
            transactions=facts.get("affected_transactions", 0),
            funds_loss=facts.get("funds_loss", Decimal(0)),
            breach=facts.get("data_or_security_breach", False),
            reportable=facts.get("regulatory_reportable", False),
            owner=rng.choice(system.team.members),
            recovered=recovered,
        )
        self._aftermath(incident)
        return incident

    def _detection_source(self, cause: str) -> str:
        rng = self.rng
        if cause == CauseCategory.DATA and rng.random() < 0.5:
            return DetectionSource.CUSTOMER  # data errors are mostly found by customers, later
        return _weighted(rng, SOURCE_WEIGHTS)

    def _classify(self, *, tier: str, occurred: int, recovered: int | None, facts: dict) -> severity.Classification:
        """The level incidents.services would give these facts under the current policy."""
        return severity.classify(
            severity.ImpactFacts(
                tier=tier,
                impact=severity.impact_of(occurred_at=_at(occurred), recovered_at=_at(recovered), now=_at(self.now)),
                affected_users=facts.get("affected_users", 0),
                affected_transactions=facts.get("affected_transactions", 0),
                funds_loss=facts.get("funds_loss", Decimal(0)),
                data_or_security_breach=facts.get("data_or_security_breach", False),
                regulatory_reportable=facts.get("regulatory_reportable", False),
            ),
            self.policy.rules,
        )

    def _aftermath(self, incident: _Incident) -> None:
        """Response, the record's creation, resolution and the availability impact of an incident."""
        rng = self.rng
        if rng.random() < 0.95:
            incident.responded = self.by_now(incident.detected + int(rng.expovariate(1 / 240)))
        incident.created = min(incident.detected + rng.randrange(30, 10 * MINUTE), self.now)
        if incident.recovered is not None and rng.random() < 0.92:
            incident.resolved = self.by_now(incident.recovered + int(_lognormal(rng, 20 * HOUR, 1.0)))
        if incident.cause == CauseCategory.DATA:
            incident.availability_impact = Decimal(0)  # a wrong bill: nobody's requests failed
        elif rng.random() < 0.75:  # mostly a share of requests failing; else the default of the level
            incident.availability_impact = Decimal(
                rng.choices(("0.02", "0.05", "0.1", "0.2", "0.3", "0.5", "1"), (3, 4, 4, 3, 2, 1, 1))[0]
            )

    # -- closed-loop items -------------------------------------------------------------------------

    def items(self, incidents: list[_Incident]) -> list[_Item]:
        rng = self.rng
        candidates = [i for i in incidents if i.recovered is not None]
        if not candidates or not self.scale.items:
            return []
        chosen = rng.choices(candidates, weights=[ITEMS_PER_LEVEL[i.level] for i in candidates], k=self.scale.items)
        ids = ids_reserve(model=ActionItem, count=len(chosen))
        planned = []
        for pk, incident in zip(ids, chosen, strict=True):
            team = incident.team
            kind = rng.choice(ActionItem.Kind.values)
            created = min(incident.recovered + rng.randrange(HOUR, 3 * DAY), self.now)
            due = created + rng.choice((7, 14, 14, 30, 30, 45)) * DAY + rng.randrange(-DAY, DAY)
            owner = rng.choice(team.members)
            item = _Item(
                pk=pk,
                incident=incident,
                kind=kind,
                title=ITEM_TITLES[kind].format(s=incident.systems[0].label, a=rng.choice(ALERT_NAMES)),
                priority=ActionItem.Priority.HIGH
                if incident.level in (Level.A, Level.B)
                else rng.choice((ActionItem.Priority.MEDIUM, ActionItem.Priority.LOW)),
                owner=owner,
                verifier=rng.choice([m for m in team.members if m != owner] or [team.manager]),
                created=created,
                due=due,
            )
            self._progress_of(item)
            incident.items.append(item)
            planned.append(item)
        self.counts["items"] = len(planned)
        return planned

    def _progress_of(self, item: _Item) -> None:
        """How far an item got by now: waived, done on time, done late, or nobody got to it; a done item is
        mostly verified, an untouched one sometimes started."""
        rng, created, due = self.rng, item.created, item.due
        roll = rng.random()
        if roll < 0.04:  # waived with the manager's approval
            item.waived = self.by_now(created + rng.randrange(DAY, 20 * DAY))
            item.waived_by = item.incident.team.manager if item.waived else None
        elif roll < 0.80:  # done on time
            item.completed = self.by_now(created + int((due - created) * rng.uniform(0.2, 1.0)))
        elif roll < 0.92:  # done late
            item.completed = self.by_now(due + int(rng.expovariate(1 / (6 * DAY))) + 1)
        # else: nobody got to it (overdue once due passes)
        if item.waived:
            item.status = ActionItem.Status.WAIVED
        elif item.completed:
            item.started = created + (item.completed - created) // 3
            item.verified = self.by_now(item.completed + rng.randrange(HOUR, 5 * DAY))
            item.status = ActionItem.Status.VERIFIED if item.verified else ActionItem.Status.DONE
        elif rng.random() < 0.5:
            item.started = self.by_now(created + rng.randrange(HOUR, 3 * DAY))
            item.status = ActionItem.Status.IN_PROGRESS if item.started else ActionItem.Status.OPEN

    def close_loops(self, incidents: list[_Incident]) -> None:
        """Resolved incidents whose items are all verified or waived get their review and are closed."""
        for incident in incidents:
            if incident.resolved is None:
                continue
            if any(item.status not in ActionItem.FINAL_STATUSES for item in incident.items):
                continue
            settled = max([incident.resolved] + [item.last_change for item in incident.items])
            incident.closed = self.by_now(settled + self.rng.randrange(HOUR, int(CLOSE_AFTER.total_seconds())))

    # -- rows (for incidents.bulk and stability.bulk: mappings by field name) ------------------------

    def incident_rows(self, incidents: list[_Incident]) -> Iterator[dict]:
        policy_id = self.policy.pk
        targets = self.policy.recovery_targets
        for i in incidents:
            status = (
                Status.CLOSED
                if i.closed
                else Status.RESOLVED
                if i.resolved
                else Status.RECOVERED
                if i.recovered
                else Status.OPEN
            )
            changes = [t for t in (i.recovered, i.resolved, i.closed) if t]
            yield {
                "id": i.pk,
                "title": i.title,
                "summary": "",
                "team": i.team.team.pk,
                "owner": i.owner,
                # A and B incidents were led by their owner; the others had no commander named.
                "commander": i.owner if i.level in ("A", "B") else None,
                "communications_lead": None,
                "detection_source": i.source,
                "occurred_at": _at(i.occurred),
                "detected_at": _at(i.detected),
                "responded_at": _at(i.responded),
                "recovered_at": _at(i.recovered),
                "resolved_at": _at(i.resolved),
                "closed_at": _at(i.closed),
                "affected_users": i.users,
                "affected_transactions": i.transactions,
                "funds_loss": i.funds_loss,
                "data_or_security_breach": i.breach,
                "regulatory_reportable": i.reportable,
                "availability_impact": i.availability_impact,
                "cause_category": i.cause,
                "cause": CAUSES[i.cause],
                "handling": HANDLINGS[i.pk % len(HANDLINGS)] if i.recovered else "",
                "status": status,
                "level": i.level,
                "classified_level": i.level,
                "severity_matches": json.dumps(i.matches, ensure_ascii=False),
                "severity_policy": policy_id,
                "level_override": "",
                "level_override_reason": "",
                "recovery_target": timedelta(seconds=targets[i.level]),
                "version": 1 + len(changes),
                "created_by": i.owner,
                "created_at": _at(i.created),
                "updated_at": _at(max([i.created, *changes])),
            }

    def review_rows(self, incidents: list[_Incident]) -> Iterator[dict]:
        """Closed incidents' reviews (复盘), written by their owner when the loop closed: the sections the
        teams require by default."""
        for i in incidents:
            if not i.closed:
                continue
            yield {
                "incident": i.pk,
                "by": i.owner,
                "at": _at(i.closed),
                "sections": {
                    "summary": f"复盘：{i.title}",
                    "impact": f"影响用户 {i.users:,}，失败交易 {i.transactions:,}，资损 {i.funds_loss:,.2f}",
                    "root_cause": CAUSES[i.cause],
                    "lessons": "；".join(item.title for item in i.items) or "无",
                },
            }

    def timeline_rows(self, incidents: list[_Incident]) -> Iterator[dict]:
        """What the services would have written: creation with the level's explanation, each status
        change with its timestamp field, each item's creation and completion."""
        with translation.override(settings.LANGUAGE_CODE):
            for i in incidents:
                # The level's explanation as values: said in the reader's language (incidents.timeline).
                yield _entry(i, TimelineEntry.Kind.CREATED, _at(i.created), new=i.level, data={"matches": i.matches})
                previous = Status.OPEN
                for name, at, status in (
                    ("recovered_at", i.recovered, Status.RECOVERED),
                    ("resolved_at", i.resolved, Status.RESOLVED),
                    ("closed_at", i.closed, Status.CLOSED),
                ):
                    if at is None:
                        continue
                    when = _at(max(at, i.created))
                    yield _entry(i, TimelineEntry.Kind.STATUS, when, field="status", old=previous, new=status)
                    yield _entry(i, TimelineEntry.Kind.CHANGE, when, field=name, new=_at(at).isoformat())
                    previous = status
                for item in i.items:
                    yield _entry(i, TimelineEntry.Kind.ACTION_ITEM, _at(item.created), item=item.pk, new=item.title)
                    if item.status != ActionItem.Status.OPEN:
                        yield _entry(
                            i,
                            TimelineEntry.Kind.ACTION_ITEM,
                            _at(item.last_change),
                            author=item.waived_by or item.owner,
                            item=item.pk,
                            field="status",
                            old=ActionItem.Status.OPEN,
                            new=item.status,
                            text="已评审豁免：已由其他改进项覆盖" if item.waived else "",
                        )

    def item_rows(self, items: list[_Item]) -> Iterator[dict]:
        for item in items:
            verified = item.verified if item.status == ActionItem.Status.VERIFIED else None
            yield {
                "id": item.pk,
                "source": ActionItem.Source.INCIDENT,
                "incident": item.incident.pk,
                "drill": None,
                "team": item.incident.team.team.pk,
                "source_note": "",
                "title": item.title,
                "description": "",
                "kind": item.kind,
                "priority": item.priority,
                "owner": item.owner,
                "verifier": item.verifier,
                "acceptance_criteria": "告警、用例或流程已上线并经验证人确认",
                "due_at": _at(item.due),
                "ticket_url": f"https://jira.example.com/browse/STAB-{item.pk}",
                "status": item.status,
                "started_at": _at(item.started),
                "completed_at": _at(item.completed),
                "verified_at": _at(verified),
                "verified_by": item.verifier if verified else None,
                "waived_at": _at(item.waived),
                "waived_by": item.waived_by,
                "waive_reason": "已由其他改进项覆盖，经理批准豁免" if item.waived else "",
                "version": 1 + sum(t is not None for t in (item.started, item.completed, verified, item.waived)),
                "created_by": item.incident.owner,
                "created_at": _at(item.created),
                "updated_at": _at(item.last_change),
            }

    # -- alerts ------------------------------------------------------------------------------------

    def _rules(self, teams: list[_Team]) -> list[_Rule]:
        """Per system, the alert rules that fire on it."""
        rng = self.rng
        rules = []
        for team in teams:
            for system in team.systems:
                noise = _lognormal(rng, 1, 1.0)  # some systems are far noisier than others
                for k, alertname in enumerate(rng.sample(ALERT_NAMES, rng.randrange(4, 11))):
                    level = rng.choices(("critical", "warning", "info"), weights=(3, 6, 1))[0]
                    labels = {
                        "alertname": alertname,
                        "env": "prod",
                        "instance": f"{system.code}-{k}:8080",
                        "severity": level,
                        "system": system.code,
                        "team": team.team.slug,
                    }
                    canonical = json.dumps(labels, sort_keys=True, ensure_ascii=False)
                    summary = f"{system.label}{alertname}"
                    rules.append(
                        _Rule(
                            system=system,
                            weight=noise * _lognormal(rng, 1, 0.7),
                            alertname=alertname,
                            severity=level,
                            fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
                            labels=canonical,
                            annotations=json.dumps({"summary": summary}, ensure_ascii=False),
                            summary=summary,
                            url=f"http://prometheus.internal:9090/graph?g0.expr=ALERTS&rule={system.code}-{k}",
                        )
                    )
        return rules

    def alert_rows(self, teams: list[_Team], incidents: list[_Incident]) -> Iterator[dict]:
        """First the alerts that revealed monitoring-detected incidents (linked to them), then the
        everyday noise of the rules, the noisiest most often."""
        rng = self.rng
        rules = self._rules(teams)
        by_system: dict[int, list[int]] = {}
        for index, rule in enumerate(rules):
            by_system.setdefault(rule.system.pk, []).append(index)
        cumulative, total = [], 0.0
        for rule in rules:
            total += rule.weight
            cumulative.append(total)
        seen: set[int] = set()  # rule index x 2^40 + starts_at: (integration, fingerprint, starts_at) is unique
        revealing = [i for i in incidents if i.source == DetectionSource.MONITORING]
        revealing = revealing[: self.scale.alerts]
        noise = self.scale.alerts - len(revealing)
        for incident in revealing:
            candidates = by_system.get(incident.systems[0].pk) or range(len(rules))
            index = rng.choice(candidates)
            yield self._alert_row(rules[index], index, incident.detected, seen=seen, incident=incident)
        chunk = 10_000
        while noise > 0:
            for index in rng.choices(range(len(rules)), cum_weights=cumulative, k=min(chunk, noise)):
                yield self._alert_row(rules[index], index, self.moment(), seen=seen)
            noise -= chunk

    def _alert_row(
        self, rule: _Rule, index: int, received: int, *, seen: set[int], incident: _Incident | None = None
    ) -> dict:
        """One occurrence of `rule` received at `received`: its start (unique per rule), exclusion,
        follow-up by a member of the team, and what the source sent until now."""
        rng = self.rng
        team = rule.system.team
        starts = received - rng.randrange(0, 45)  # group_wait before the first notification
        while (index << 40) + starts in seen:
            starts -= 1
        seen.add((index << 40) + starts)
        excluded = ""
        if incident is None:
            roll = rng.random()
            excluded = "maintenance" if roll < 0.02 else "silenced" if roll < 0.03 else ""
        by = rng.choice(team.members)
        follow = self.by_now(self._follow_up(team, received, incident=incident, excluded=excluded))
        followed = follow is not None
        action = "link" if incident is not None else rng.choices(("ack", "comment", "resolve"), (85, 7, 8))[0]
        resolved_by = by if followed and action == "resolve" else None
        sent = self._notifications(starts, received, resolved=follow if resolved_by else None)
        status, resolved_at, ends_at = sent.status, sent.resolved_at, sent.ends_at
        notifications, last = sent.notifications, sent.last
        acknowledged = followed and action == "ack"
        return {
            "integration": team.integration.pk,
            "fingerprint": rule.fingerprint,
            "starts_at": _at(starts),
            "status": status,
            "alertname": rule.alertname,
            "severity": rule.severity,
            "summary": rule.summary,
            "labels": rule.labels,
            "annotations": rule.annotations,
            "generator_url": rule.url,
            "team": team.team.pk,
            "system": rule.system.pk,
            "received_at": _at(received),
            "last_received_at": _at(last),
            "notifications": notifications,
            "excluded": excluded,
            "ends_at": _at(ends_at),
            "resolved_at": _at(resolved_at),
            "resolved_by": resolved_by,
            "acknowledged_at": _at(follow) if acknowledged else None,
            "acknowledged_by": by if acknowledged else None,
            "followed_up_at": _at(follow),
            "followed_up_by": by if followed else None,
            "incident": incident.pk if incident is not None and followed else None,
            # The last write that touched it: receipt, follow-up or resolution.
            "changed_at": _at(max(t for t in (received, follow, resolved_at) if t is not None)),
            "receipt_started": False,  # Alertmanager sends starts_at
        }

    def _notifications(self, starts: int, received: int, *, resolved: int | None) -> _Notifications:
        """What the source sent by now: it fires until its end, notifying again every repeat interval, then
        sends resolved, unless a person resolved the occurrence first (at `resolved`)."""
        ends = starts + max(int(_lognormal(self.rng, 8 * MINUTE, 1.2)), received - starts + 1)
        repeats = (min(ends, self.now) - received) // REPEAT_INTERVAL
        notifications, last = 1 + repeats, received + repeats * REPEAT_INTERVAL
        if resolved is not None:
            return _Notifications("resolved", notifications, last, resolved_at=resolved)
        if ends <= self.now:
            return _Notifications("resolved", notifications + 1, ends, resolved_at=ends, ends_at=ends)
        return _Notifications("firing", notifications, last)

    def _follow_up(self, team: _Team, received: int, *, incident: _Incident | None, excluded: str) -> int | None:
        """When someone followed the alert up, if anyone did (possibly after now): a revealing alert as the
        incident was responded to, an excluded one rarely, the rest as the team's discipline has it."""
        rng = self.rng
        if incident is not None:
            return received + max(0, (incident.responded or incident.detected + 600) - incident.detected)
        if excluded:
            return received + int(rng.expovariate(1 / 1800)) if rng.random() < 0.2 else None
        roll = rng.random()
        if roll < team.follow_up_discipline:
            return received + min(int(_lognormal(rng, 70, 0.9)), 300)
        if roll < team.follow_up_discipline + (1 - team.follow_up_discipline) * 0.6:
            return received + 301 + int(rng.expovariate(1 / 1500))
        return None

    # -- the whole -------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        teams = self.organisation()
        incidents = self.incidents(teams)
        self.items(incidents)
        self.close_loops(incidents)
        progress = self.progress
        incidents_bulk_load(rows=self.incident_rows(incidents), total=len(incidents), progress=progress)
        pairs = [{"incident": i.pk, "system": s.pk} for i in incidents for s in i.systems]
        incident_systems_bulk_load(rows=pairs, total=len(pairs), progress=progress)
        items = [item for i in incidents for item in i.items]
        action_items_bulk_load(rows=self.item_rows(items), total=len(items), progress=progress)
        reviews_bulk_load(rows=self.review_rows(incidents), progress=progress)
        self.counts["timeline"] = timeline_entries_bulk_load(
            rows=self.timeline_rows(incidents),
            total=sum(1 + 2 * sum(t is not None for t in (i.recovered, i.resolved, i.closed)) for i in incidents)
            + sum(1 + (item.status != ActionItem.Status.OPEN) for item in items),
            progress=progress,
        )
        self.counts["alerts"] = alert_occurrences_bulk_load(
            # In the order of received_at, as ingestion writes them: a month's alerts then lie together on
            # disk, as in a real installation (in generation order a month's scan read 3 times the pages).
            rows=_in_received_order(self.alert_rows(teams, incidents)),
            total=self.scale.alerts,
            progress=progress,
        )
        self.counts["alert_activities"] = alert_follow_up_activities_bulk_load(
            integration_ids=[t.integration.pk for t in teams], progress=progress
        )
        # As the beat task keeps them in a running installation (stability.tasks).
        self.progress("day counts", 0, 1)
        follow_up.refresh_day_counts()
        self.progress("day counts", 1, 1)
        return self.counts


# Alert rows held in memory at once while ordering them by received_at (each about 1.6 KB as a dict): a
# sorted run is spilled to a temporary file, and the runs are merged.
SORT_RUN = 200_000
_SPILL_BATCH = 1_000  # rows pickled together: the rule's strings they share are written once per batch


def _spill(run: list[dict]) -> IO[bytes]:
    spilled = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _unspill, once read)
    for start in range(0, len(run), _SPILL_BATCH):
        pickle.dump(run[start : start + _SPILL_BATCH], spilled, protocol=pickle.HIGHEST_PROTOCOL)
    spilled.seek(0)
    return spilled


def _unspill(spilled: IO[bytes]) -> Iterator[dict]:
    with spilled:
        while True:
            try:
                batch = pickle.load(spilled)
            except EOFError:
                return
            yield from batch


def _in_received_order(rows: Iterable[dict]) -> Iterator[dict]:
    """`rows` as sorted(rows, key=received_at) gives them (ties in their given order), holding at most
    SORT_RUN of them in memory: 10,000,000 alerts sorted at once would hold about 16 GB. Each run of SORT_RUN
    is sorted and spilled to a temporary file, then the runs are merged (heapq.merge keeps equal keys in
    the order of the runs, which is the given order)."""
    received_at = itemgetter("received_at")
    rows = iter(rows)
    first = sorted(islice(rows, SORT_RUN), key=received_at)
    if len(first) < SORT_RUN:
        yield from first
        return
    runs = [_spill(first)]
    del first
    while run := sorted(islice(rows, SORT_RUN), key=received_at):
        runs.append(_spill(run))
        del run
    yield from heapq.merge(*(_unspill(spilled) for spilled in runs), key=received_at)


def generate_history(
    *,
    window: periods.Period,
    scale: Scale,
    seed: int,
    now: datetime,
    append: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write a realistic history of `scale` with incidents and alerts in `window` (see the module's
    docstring), in one transaction. Refuses (HistoryRefused) when the database already holds
    incidents, unless `append`. Returns the rows written per kind."""
    if scale.teams < 1 or scale.systems < scale.teams:
        raise HistoryRefused("Need at least one team, and at least as many systems as teams.")
    if min(scale.incidents, scale.items, scale.alerts) < 0:
        raise HistoryRefused("Counts cannot be negative.")
    started = time.monotonic()
    with transaction.atomic():
        if not append and Incident.objects.exists():
            raise HistoryRefused("The database already holds incidents; generate into an empty one, or pass --append.")
        history = _History(
            window=window, scale=scale, seed=seed, now=now.replace(microsecond=0), progress=progress or _quiet
        )
        counts = history.run()
    if connection.vendor == "postgresql":
        _vacuum_analyze(progress or _quiet)
    counts["seconds"] = round(time.monotonic() - started)
    return counts


def _vacuum_analyze(report: Progress) -> None:
    """What autovacuum does in a running installation, at once: planner statistics, and the visibility
    map that lets the follow-up figures read the covering index alone. Outside the transaction."""
    tables = [Incident, Incident.systems.through, ActionItem, TimelineEntry, AlertOccurrence, AlertDayCount]
    tables.append(AlertActivity)
    report("vacuum analyze", 0, len(tables))
    # VACUUM cannot run inside a transaction (a caller's, or a test's): there, statistics alone.
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for done, model in enumerate(tables, start=1):
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")
            report("vacuum analyze", done, len(tables))


def _quiet(phase: str, done: int, total: int) -> None:
    return None

"""The content of the demo data set loaded by `manage.py load_demo`.

Everything here is plain data; the command (demo/management/commands/load_demo.py) turns it
into users, teams, systems, incidents and alerts: teams, systems and incidents through
incidents.services, so they are classified and timelined as in life; the alerts of the last
ALERT_DAYS days and their follow-ups through stability.bulk, as they happened in the past.

Incident times are relative: `days_ago` + `clock` (local time the impact started) or
`minutes_ago`, then minutes from one timestamp to the next. Levels are not set but follow from
the facts under the default policy (severity.md); `level` is the level those facts give, kept
here to check the data against the policy. In `handling`, `cause` and `summary`, {occurred},
{detected}, {responded}, {recovered} and {resolved} are replaced with the local times, so the
story matches the timestamps whatever day the demo is loaded. A note's text gets its own local
time put in front.

Closed-loop items (闭环项, `items`) count their days from the incident's start and are taken to
their status by the services' steps. A resolved incident older than CLOSE_AFTER_DAYS is closed
when every item is verified or waived, after its review is written; the demo user "engineer" is
left with overdue open items, so reminders show in `make run`.
"""

from dataclasses import dataclass

from accounts.models import Role
from incidents.models import ActionItem, Level, Tier
from incidents.models import CauseCategory as Cause
from incidents.models import DetectionSource as Source

PASSWORD = "demo-password"
SEED = 2024
# Resolved incidents that started longer ago than this are closed (闭环), unless the template says.
CLOSE_AFTER_DAYS = 14
# Incidents at least this old get their day and clock jittered (random.Random(SEED)).
JITTER_AFTER_DAYS = 7


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    role: str = Role.ENGINEER
    superuser: bool = False


USERS = (
    DemoUser("engineer", "Lei", "Wang"),
    DemoUser("manager", "Luna", "Chen", role=Role.MANAGER),
    DemoUser("admin", "Hui", "Zhou", role=Role.ADMIN, superuser=True),
    DemoUser("zhangpeng", "Peng", "Zhang"),
    DemoUser("yangjie", "Jie", "Yang"),
    DemoUser("fumin", "Min", "Fu"),
    DemoUser("liweinan", "Weinan", "Li"),
)
LOGINS = ("engineer", "manager", "admin")


@dataclass(frozen=True)
class DemoTeam:
    slug: str
    name: str
    members: tuple[str, ...]
    managers: tuple[str, ...] = ("manager",)


# The first team's slug marks the demo as loaded once it has incidents.
TEAMS = (
    DemoTeam("payments", "Payments (支付)", ("zhangpeng", "engineer", "liweinan")),
    DemoTeam("accounts", "Accounts (账户)", ("fumin", "liweinan")),
    DemoTeam("bank-channels", "Bank channels (银行通道)", ("yangjie", "engineer")),
    DemoTeam("settlement", "Settlement (清结算)", ("yangjie", "fumin")),
)


@dataclass(frozen=True)
class DemoSystem:
    code: str
    name: str
    tier: str
    team: str
    availability_target: str
    description: str


SYSTEMS = (
    DemoSystem("cashier", "Cashier (收银台)", Tier.P0, "payments", "99.995", "聚合收银台 / hosted checkout"),
    DemoSystem("payout", "Payout (出金)", Tier.P0, "payments", "99.99", "代付出金 / payouts to bank accounts"),
    DemoSystem("collection", "Collection (入金)", Tier.P0, "payments", "99.99", "收款入金 / pay-ins"),
    DemoSystem("account-core", "Account core (账户核心)", Tier.P0, "accounts", "99.99", "账户2.0记账 / ledger"),
    DemoSystem("bill-service", "Bill service (账单服务)", Tier.P1, "accounts", "99.9", "账单产出 / statements"),
    DemoSystem(
        "bank-gateway", "Bank gateway (银行前置)", Tier.P1, "bank-channels", "99.9", "银行前置机 / bank front-end"
    ),
    DemoSystem(
        "bank-statement", "Bank statements (银行流水)", Tier.P1, "bank-channels", "99.9", "银行流水获取 / statements"
    ),
    DemoSystem("settlement", "Settlement (清结算)", Tier.P1, "settlement", "99.9", "清分结算 D0/T+1"),
    DemoSystem("reconciliation", "Reconciliation (对账)", Tier.P1, "settlement", "99.9", "渠道对账 / reconciliation"),
    DemoSystem("merchant-portal", "Merchant portal (商户门户)", Tier.P2, "accounts", "99.5", "商户门户与企业钱包H5"),
    DemoSystem("pos", "POS acquiring (收单POS)", Tier.P2, "payments", "99.5", "POS收单与终端管理"),
    DemoSystem("ops-console", "Ops console (运营后台)", Tier.P3, "settlement", "99.5", "运营后台 / back office"),
)


@dataclass(frozen=True)
class Note:
    after: int  # minutes after the impact started; kept within the incident's span
    text: str


ItemStatus = ActionItem.Status
Kind = ActionItem.Kind
HIGH = ActionItem.Priority.HIGH
LOW = ActionItem.Priority.LOW


@dataclass(frozen=True)
class DemoItem:
    """A closed-loop item (闭环项) of an incident, made through incidents.services like the rest.

    Days count from the local day the incident started: due at DUE_CLOCK that day, completed at
    DONE_CLOCK (not later than now), verified the day after (not later than now). `status` is where
    it ends: open, in_progress (started the day after the incident), done, verified, or waived (by
    the manager, with `waive_reason`)."""

    title: str
    kind: str
    owner: str
    due: int
    status: str = ItemStatus.VERIFIED
    done: int | None = None  # default: the day before it is due (on time)
    priority: str = ActionItem.Priority.MEDIUM
    verifier: str | None = None  # None: the manager verifies
    acceptance: str = ""
    ticket: str = ""
    waive_reason: str = ""


DUE_CLOCK = "18:00"
DONE_CLOCK = "16:00"


@dataclass(frozen=True)
class DemoIncident:
    title: str
    systems: tuple[str, ...]
    source: str
    cause_category: str
    level: str  # what the facts give under the default policy, before any override
    # When: days_ago + clock, or minutes_ago (recent, live incidents).
    days_ago: int = 0
    clock: str = "10:00"
    minutes_ago: int | None = None
    jitter: bool = True
    # Minutes: occurred -> detected, detected -> responded, occurred -> recovered (the impact),
    # recovered -> resolved. None: not recovered / not resolved yet.
    detect: int = 2
    respond: int = 5
    recover: int | None = 10
    resolve: int | None = 120
    # Impact.
    users: int = 0
    transactions: int = 0
    funds_loss: str = "0"
    regulatory_reportable: bool = False
    availability_impact: str | None = None
    # Story.
    summary: str = ""
    cause: str = ""
    handling: str = ""
    owner: str | None = None  # default: one of the team's members
    notes: tuple[Note, ...] = ()
    override: tuple[str, str] | None = None  # (level, reason), set by the manager
    items: tuple[DemoItem, ...] = ()
    # The review (复盘). Incidents that close get one (load_demo._review): this text as its summary, or one made
    # from cause and handling; impact from the facts, root cause, lessons from the items.
    review: str = ""
    # None: close when resolved, older than CLOSE_AFTER_DAYS and every item verified or waived.
    close: bool | None = None


INCIDENTS = (
    DemoIncident(
        "账户核心慢SQL拖慢余额查询 / Slow SQL on account-core slowed balance queries",
        ("account-core",),
        Source.MONITORING,
        Cause.CAPACITY,
        Level.D,
        days_ago=118,
        clock="14:20",
        detect=2,
        respond=3,
        recover=7,
        resolve=1440,
        availability_impact="0.05",
        summary="A new statement-paging query did full scans; balance queries slowed for 7 minutes.",
        cause="新增的账户流水分页查询未命中索引，全表扫描占满数据库IO",
        handling="{recovered:%H:%M} 紧急下线该查询入口；次日补建联合索引后重新开放",
        items=(
            DemoItem(
                "补建账户流水分页联合索引 / Composite index for statement paging",
                Kind.FIX,
                "fumin",
                due=3,
                done=1,
                acceptance="分页查询执行计划命中索引，P99 < 50 ms / the paging query uses the index, p99 < 50 ms",
            ),
        ),
    ),
    DemoIncident(
        "收银台iOS端唤起微信支付失败 / WeChat Pay would not open from the iOS cashier",
        ("cashier",),
        Source.MONITORING,
        Cause.CODE_CHANGE,
        Level.D,
        days_ago=113,
        clock="10:05",
        detect=3,
        respond=2,
        recover=9,
        resolve=240,
        users=410,
        transactions=520,
        availability_impact="0.08",
        summary="A cashier release changed the WeChat Pay universal link; iOS users could not pay for 9 minutes.",
        cause="收银台新版本修改了微信支付 Universal Link 配置，iOS 端唤起失败",
        handling="{recovered:%H:%M} 回滚收银台前端版本；补充iOS唤起支付的必测用例",
        items=(
            DemoItem(
                "补充iOS唤起支付的必测用例 / iOS pay-launch cases in the must-test set",
                Kind.TEST_CASE,
                "zhangpeng",
                due=7,
                done=10,  # late
                verifier="liweinan",
            ),
        ),
    ),
    DemoIncident(
        "对账文件解析失败，差错账1,240笔 / Reconciliation file parse failure, 1,240 unmatched items",
        ("reconciliation",),
        Source.INSPECTION,
        Cause.DATA,
        Level.C,
        days_ago=108,
        clock="09:30",
        detect=40,
        respond=10,
        recover=55,
        resolve=300,
        transactions=1240,
        summary="A channel added a column to its reconciliation file; 1,240 items were reported unmatched.",
        cause="渠道对账文件新增字段未提前通知，解析器按固定列位读取导致金额错位",
        handling="{recovered:%H:%M} 修改解析规则重新对账，1,240笔差错账全部平账",
        notes=(Note(45, "确认差错账均为解析错位，非真实长短款 / confirmed: parse shift, not real mismatches"),),
        items=(
            DemoItem(
                "对账文件改为按字段名解析 / Parse reconciliation files by column name",
                Kind.FIX,
                "yangjie",
                due=14,
                done=12,
            ),
        ),
    ),
    DemoIncident(
        "POS交易凭条打印商户名乱码 / Garbled merchant names on POS receipts",
        ("pos",),
        Source.CUSTOMER,
        Cause.CODE_CHANGE,
        Level.D,
        days_ago=104,
        clock="15:40",
        detect=30,
        respond=10,
        recover=55,
        resolve=1440,
        users=35,
        summary="Receipts printed garbled merchant names after a terminal firmware push.",
        cause="终端固件更新后打印模块默认编码由GBK变为UTF-8",
        handling="{recovered:%H:%M} 下发编码配置修复；凭条补打通道开放给商户",
    ),
    DemoIncident(
        "清结算日切任务失败，T+1结算延迟 / Settlement day-cut job failed, T+1 settlement late",
        ("settlement",),
        Source.MONITORING,
        Cause.INFRASTRUCTURE,
        Level.C,
        days_ago=100,
        clock="02:10",
        detect=5,
        respond=10,
        recover=50,
        resolve=600,
        users=320,
        summary="The day-cut job's node lost its NFS mount; T+1 settlement started 50 minutes late.",
        cause="日切任务所在节点NFS挂载丢失，任务启动失败未自动重试",
        handling="{recovered:%H:%M} 切换到备用节点重跑日切，结算出款完成；任务增加失败自动重试",
        items=(
            DemoItem(
                "日切任务失败自动重试并报警 / Retry and alert on day-cut failures",
                Kind.MONITORING,
                "fumin",
                due=5,
                done=4,
            ),
        ),
    ),
    DemoIncident(
        "商户门户短信验证码发送失败 / Merchant portal SMS codes not delivered",
        ("merchant-portal",),
        Source.CUSTOMER,
        Cause.THIRD_PARTY,
        Level.D,
        days_ago=97,
        clock="11:00",
        detect=20,
        respond=10,
        recover=45,
        resolve=180,
        users=380,
        summary="The SMS provider throttled our signature; merchants could not log in with SMS codes.",
        cause="短信服务商通道签名被限流，未配置备用短信通道",
        handling="{recovered:%H:%M} 切换备用短信服务商；登录页增加邮箱验证码备用方式",
    ),
    DemoIncident(
        "出金批量代付重复提交 / Payout batch submitted twice",
        ("payout",),
        Source.INSPECTION,
        Cause.CODE_CHANGE,
        Level.C,
        days_ago=93,
        clock="20:15",
        detect=45,
        respond=10,
        recover=8,
        resolve=4320,
        transactions=214,
        funds_loss="12800.00",
        summary="A retry after a timeout re-submitted a payout batch; 214 payouts went out twice.",
        cause="批量代付超时重试未校验批次幂等号，同一批次被重复提交",
        handling="出金对账发现重复出款，{responded:%H:%M} 冻结相关收款账户；三日内追回大部分资金，剩余12,800元确认资损",
        notes=(
            Note(60, "联系银行协查，冻结重复入账账户 / asked the bank to freeze the receiving accounts"),
            Note(1440, "已追回198笔，剩余16笔协商中 / 198 of 214 recovered, 16 in negotiation"),
        ),
        items=(
            DemoItem(
                "批量代付按批次号幂等 / Idempotent payout batches by batch number",
                Kind.FIX,
                "zhangpeng",
                due=10,
                done=9,
                priority=HIGH,
                verifier="liweinan",
            ),
            DemoItem(
                "出金日终核对重复出款 / End-of-day check for duplicate payouts",
                Kind.MONITORING,
                "liweinan",
                due=14,
                done=20,  # late
            ),
        ),
    ),
    DemoIncident(
        "招商银行流水接口限流 / CMB statement API rate-limited",
        ("bank-statement",),
        Source.THIRD_PARTY,
        Cause.THIRD_PARTY,
        Level.D,
        days_ago=89,
        clock="16:30",
        detect=5,
        respond=10,
        recover=18,
        resolve=120,
        summary="CMB lowered the statement API quota without notice; statement pulls were delayed.",
        cause="招商银行下调流水查询接口QPS配额，未提前通知",
        handling="{recovered:%H:%M} 降低拉取并发并错峰调度；与银行确认新配额",
    ),
    DemoIncident(
        "路由配置变更导致银联卡交易路由到已下线通道 / Routing change sent UnionPay cards to a retired channel",
        ("collection",),
        Source.MONITORING,
        Cause.CONFIG_CHANGE,
        Level.C,
        days_ago=85,
        clock="10:40",
        detect=3,
        respond=2,
        recover=14,
        resolve=240,
        users=1600,
        transactions=1830,
        availability_impact="0.22",
        summary="A routing-rule change still pointed UnionPay cards at a retired channel; 1,830 pay-ins failed.",
        cause="路由规则变更时沿用了旧模板，银联卡仍指向已下线通道，变更未走双人复核",
        handling="{recovered:%H:%M} 回滚路由配置；路由变更纳入双人复核和灰度发布",
        notes=(Note(6, "回滚路由配置 / rolled back the routing rule"),),
    ),
    DemoIncident(
        "运营后台审批流卡住 / Ops console approval queue stuck",
        ("ops-console",),
        Source.OTHER,
        Cause.INFRASTRUCTURE,
        Level.D,
        days_ago=81,
        clock="09:15",
        detect=40,
        respond=15,
        recover=180,
        resolve=60,
        summary="The workflow engine's Redis filled up; refunds awaiting approval queued for three hours.",
        cause="工作流引擎使用的Redis内存写满，审批任务无法推进",
        handling="{recovered:%H:%M} 清理过期键并扩容Redis；增加内存水位告警",
    ),
    DemoIncident(
        "账户核心主库主从切换，记账短暂失败 / Account-core database failover, postings failed briefly",
        ("account-core",),
        Source.MONITORING,
        Cause.INFRASTRUCTURE,
        Level.C,
        days_ago=78,
        clock="14:00",
        detect=1,
        respond=3,
        recover=11,
        resolve=180,
        transactions=460,
        summary="A host failure triggered a database failover; postings failed until the pool reconnected.",
        cause="主库所在宿主机故障触发主从切换，应用连接池未及时感知新主库",
        handling="{recovered:%H:%M} 重启记账服务连接池后恢复；失败记账已自动重试补记",
    ),
    DemoIncident(
        "清结算MQ消息积压，D0结算延迟 / Settlement MQ backlog delayed D0 settlement",
        ("settlement",),
        Source.MONITORING,
        Cause.CAPACITY,
        Level.B,
        days_ago=74,
        clock="21:30",
        detect=10,
        respond=5,
        recover=95,
        resolve=1440,
        users=2100,
        transactions=8600,
        summary="A promotion tripled settlement messages; consumers fell behind and D0 payouts were late.",
        cause="营销活动带来3倍结算消息量，消费者并发固定为4，未做容量评估",
        handling="扩容消费者并临时关闭非关键对账消息，{recovered:%H:%M} D0结算全部出款",
        notes=(
            Note(30, "扩容消费者至16个 / scaled consumers to 16"),
            Note(70, "积压消息消费完毕 / backlog drained"),
            Note(95, "D0结算全部出款 / all D0 settlements paid out"),
        ),
    ),
    DemoIncident(
        "商户门户遭遇撞库攻击，登录接口限流 / Credential stuffing on merchant portal login",
        ("merchant-portal",),
        Source.MONITORING,
        Cause.SECURITY,
        Level.C,
        days_ago=70,
        clock="11:20",
        detect=5,
        respond=5,
        recover=75,
        resolve=1440,
        availability_impact="0.30",
        summary="A credential-stuffing wave hit the login API; rate limiting also slowed real merchants.",
        cause="外部撞库攻击，登录接口缺少设备指纹与验证码策略，限流误伤正常商户",
        handling="{recovered:%H:%M} WAF封禁攻击IP段并上线滑块验证码；未发现账户被盗",
    ),
    DemoIncident(
        "入金回调通知重复推送 / Duplicate pay-in callbacks to merchants",
        ("collection",),
        Source.CUSTOMER,
        Cause.CODE_CHANGE,
        Level.D,
        days_ago=66,
        clock="13:50",
        detect=6,
        respond=1,
        recover=8,
        resolve=120,
        transactions=312,
        summary="A notification change dropped the dedup key; merchants received callbacks twice.",
        cause="通知服务重构遗漏去重键，回调被重复推送",
        handling="{recovered:%H:%M} 关闭新通知开关；通知商户按订单号幂等处理",
    ),
    DemoIncident(
        "三类账单产出延迟 / Three bill types produced late",
        ("bill-service",),
        Source.INSPECTION,
        Cause.CAPACITY,
        Level.D,
        days_ago=62,
        clock="02:30",
        jitter=False,
        detect=10,
        respond=15,
        recover=25,
        resolve=4320,
        summary="Month-end volume pushed bill generation past its 02:30 deadline by 25 minutes.",
        cause="月初账单数据量翻倍，账单任务串行执行超出时间窗",
        handling="{recovered:%H:%M} 账单全部产出；账单任务改为分片并行（账单提效项目）",
    ),
    DemoIncident(
        "POS终端签到失败 / POS terminals failed to sign in after key rotation",
        ("pos",),
        Source.MONITORING,
        Cause.CONFIG_CHANGE,
        Level.D,
        days_ago=58,
        clock="19:05",
        detect=8,
        respond=5,
        recover=40,
        resolve=600,
        users=150,
        summary="A terminal master-key rotation missed one batch of terminals; they could not sign in.",
        cause="终端主密钥轮换配置漏了一批终端型号",
        handling="{recovered:%H:%M} 补发该批终端密钥，终端重新签到成功",
    ),
    DemoIncident(
        "银行前置机磁盘写满 / Bank gateway disk full",
        ("bank-gateway",),
        Source.MONITORING,
        Cause.INFRASTRUCTURE,
        Level.D,
        days_ago=55,
        clock="09:40",
        detect=2,
        respond=3,
        recover=20,
        resolve=240,
        summary="Debug logging left on after a bank test filled the gateway's disk.",
        cause="联调时开启的报文调试日志未关闭，磁盘写满",
        handling="{recovered:%H:%M} 清理日志并关闭调试级别；磁盘水位告警阈值调至80%",
    ),
    DemoIncident(
        "新代付通道漏配失败重试 / New payout channel missing its retry config",
        ("payout",),
        Source.INSPECTION,
        Cause.CONFIG_CHANGE,
        Level.D,
        days_ago=51,
        clock="15:10",
        detect=4,
        respond=2,
        recover=9,
        resolve=180,
        transactions=57,
        summary="A newly connected payout channel had no retry config; 57 payouts failed instead of retrying.",
        cause="新接入通道上线清单未包含失败重试配置项",
        handling="{recovered:%H:%M} 补充重试配置，57笔失败代付重新发起成功",
    ),
    DemoIncident(
        "收银台P99延迟升高至3秒 / Cashier p99 latency up to 3 s",
        ("cashier",),
        Source.MONITORING,
        Cause.CAPACITY,
        Level.C,
        days_ago=47,
        clock="11:30",
        detect=2,
        respond=3,
        recover=18,
        resolve=1440,
        users=700,
        transactions=480,
        availability_impact="0.15",
        summary="A flash sale saturated the cashier's risk-check calls; p99 reached 3 s and some payments timed out.",
        cause="秒杀活动流量超出风控联机接口容量，收银台同步调用风控超时",
        handling="{recovered:%H:%M} 风控扩容并对低风险交易降级为异步校验",
    ),
    # The seed week (8/28-8/31): kept on fixed relative days, as in the weekly report.
    DemoIncident(
        "二合一账单手续费扣费场景缺少236条数据 / Fee bill missing 236 rows",
        ("bill-service",),
        Source.CUSTOMER,
        Cause.CODE_CHANGE,
        Level.B,
        days_ago=44,
        clock="16:05",
        jitter=False,
        detect=19,
        respond=6,
        recover=127,
        resolve=1440,
        transactions=236,
        summary="Fee-deduction rows went missing from the 2-in-1 bill after a change to the account statement.",
        cause="账户对账单中增加了TYSTD号可为空的处理，二合一账单使用该字段作为主键，导致账单数据异常",
        handling="{recovered:%H:%M} 236条异常数据修复完毕，已经同步资金平台，资金平台业务对账验收完毕",
        notes=(
            Note(40, "定位到TYSTD号为空的记录被主键去重 / rows with empty TYSTD were de-duplicated by key"),
            Note(127, "236条数据修复完毕并同步资金平台 / 236 rows repaired and synced to the funds platform"),
        ),
        override=(
            Level.C,
            "仅账单数据缺失，无交易失败和资损，资金平台已验收；稳定性周会定为C级 / "
            "Bill rows only: no failed payments, no funds loss; rated C at the weekly stability review",
        ),
        items=(
            DemoItem(
                "补充手续费账单数据监控报警 / Alert on missing fee bill rows",
                Kind.MONITORING,
                "fumin",
                due=7,
                done=6,
                priority=HIGH,
                verifier="liweinan",
                acceptance="账单行数与扣费流水不一致时5分钟内报警 / alert within 5 min of a row mismatch",
                ticket="https://jira.example.com/browse/BILL-1024",
            ),
            DemoItem(
                "二合一账单主键字段改为非空 / Make the 2-in-1 bill key column NOT NULL",
                Kind.FIX,
                "liweinan",
                due=14,
                done=12,
                priority=HIGH,
                verifier="fumin",
                acceptance="P0/P1库主键字段 default null 清零 / no nullable key columns in P0/P1 databases",
                ticket="https://jira.example.com/browse/BILL-1025",
            ),
            DemoItem(
                "必测用例补充：TYSTD号为空 / Must-test case: empty TYSTD number",
                Kind.TEST_CASE,
                "fumin",
                due=10,
                done=9,
            ),
        ),
        review=(
            "复盘：账户对账单增加TYSTD号可为空的处理时，未评估下游二合一账单以该字段作主键，236条手续费扣费数据被去重丢失。"
            "改进：主键字段改为非空；补充手续费账单数据监控报警；必测用例补充空值场景。 / "
            "Review: making the TYSTD number nullable was not checked against the 2-in-1 bill, which keys on it; "
            "236 fee rows were de-duplicated away. Changes: key column NOT NULL, an alert on missing fee rows, "
            "a must-test case for empty values."
        ),
    ),
    DemoIncident(
        "光大前置机自动签退导致流水获取延迟 / CEB front-end signed off, statements late",
        ("bank-gateway", "bank-statement"),
        Source.CUSTOMER,
        Cause.THIRD_PARTY,
        Level.C,
        days_ago=42,
        clock="10:20",
        jitter=False,
        detect=29,
        respond=6,
        recover=45,
        resolve=2880,
        summary="The CEB front-end signed itself off during month-end close; FSSC got CEB statements late.",
        cause="光大前置机在月结期间自动签退，流水拉取任务未感知签退状态，导致FSSC获取光大流水不及时",
        handling="1. {recovered:%H:%M} 重新签到前置机，流水获取成功 2. 增加光大前置机日志监控告警",
        notes=(Note(38, "重新签到光大前置机 / signed the CEB front-end back in"),),
        items=(
            DemoItem(
                "增加光大前置机日志监控告警 / Alert on CEB front-end sign-off in its logs",
                Kind.MONITORING,
                "yangjie",
                due=3,
                done=2,
            ),
            DemoItem(
                "流水拉取任务感知前置机签退状态 / Statement fetch notices a signed-off front-end",
                Kind.FIX,
                "engineer",
                due=21,
                done=25,  # late
                verifier="yangjie",
            ),
        ),
    ),
    DemoIncident(
        "杭州联合银行修改日切时间导致流水格式差异 / Hangzhou United Bank changed its day-cut time",
        ("bank-statement",),
        Source.MONITORING,
        Cause.THIRD_PARTY,
        Level.D,
        days_ago=41,
        clock="11:15",
        jitter=False,
        detect=7,
        respond=8,
        recover=20,
        resolve=4320,
        availability_impact="0",
        summary="The bank moved its day-cut and its statement format changed; a compatibility fix went out that day.",
        cause="杭州联合银行修改日切时间，返回的流水数据格式出现差异",
        handling="{recovered:%H:%M} 临时上线做兼容处理，未对业务产生影响；目前在和三方、银行侧沟通，代码侧评估如何修改",
        items=(
            DemoItem(
                "流水解析兼容银行日切时间变化 / Statement parser tolerates day-cut changes",
                Kind.FIX,
                "yangjie",
                due=14,
                done=13,
            ),
            DemoItem(
                "与杭州联合银行约定日切变更提前通知 / Bank to announce day-cut changes in advance",
                Kind.PROCESS,
                "yangjie",
                due=21,
                status=ItemStatus.WAIVED,
                priority=LOW,
                waive_reason=(
                    "银行不接受书面约定；解析兼容已覆盖该风险 / The bank will not sign such an agreement; "
                    "the parser fix covers the risk"
                ),
            ),
        ),
    ),
    DemoIncident(
        "拉卡拉误升级理房通设备导致异地刷卡异常 / Lakala upgraded our POS devices by mistake",
        ("pos",),
        Source.CUSTOMER,
        Cause.THIRD_PARTY,
        Level.C,
        days_ago=41,
        clock="09:10",
        jitter=False,
        detect=264,
        respond=10,
        recover=370,
        resolve=1440,
        users=40,
        transactions=86,
        summary="Lakala pushed its generic firmware to our custom devices; Beijing restricted cards failed off-site.",
        cause="拉卡拉误升级了理房通的设备，导致北京限制卡号的单子异地刷卡异常",
        handling="{recovered:%H:%M} 已降级回理房通的定制版本；与拉卡拉约定设备升级需提前报备",
        items=(
            DemoItem(
                "与拉卡拉约定设备升级提前报备 / Lakala to announce device upgrades in advance",
                Kind.PROCESS,
                "zhangpeng",
                due=7,
                done=5,
            ),
        ),
    ),
    DemoIncident(
        "建设银行专线证书过期 / CCB leased-line TLS certificate expired",
        ("bank-gateway",),
        Source.MONITORING,
        Cause.INFRASTRUCTURE,
        Level.C,
        days_ago=37,
        clock="18:40",
        detect=4,
        respond=4,
        recover=42,
        resolve=2880,
        transactions=760,
        summary="The client certificate for the CCB line expired; CCB requests failed until a new one was installed.",
        cause="建设银行专线TLS客户端证书到期未续期，到期提醒邮件发送到已离职同事邮箱",
        handling="{recovered:%H:%M} 紧急申请并部署新证书；证书纳入统一到期巡检",
        notes=(
            Note(10, "确认为客户端证书过期 / confirmed the client certificate had expired"),
            Note(35, "新证书部署完成，开始验证 / new certificate deployed, verifying"),
        ),
        items=(
            DemoItem(
                "证书纳入统一到期巡检 / Certificates in the expiry inspection",
                Kind.MONITORING,
                "yangjie",
                due=7,
                done=6,
            ),
            DemoItem(
                "到期提醒改发团队邮箱 / Expiry notices to the team mailbox",
                Kind.PROCESS,
                "engineer",
                due=5,
                done=3,
                verifier="yangjie",
            ),
        ),
    ),
    DemoIncident(
        "账户2.0迁移后冻结金额展示错误 / Frozen balance shown wrongly after the account 2.0 migration",
        ("merchant-portal",),
        Source.CUSTOMER,
        Cause.DATA,
        Level.D,
        days_ago=33,
        clock="10:10",
        detect=25,
        respond=15,
        recover=50,
        resolve=1440,
        users=90,
        summary="Merchants saw frozen amounts twice after migrated accounts kept a stale frozen field.",
        cause="账户2.0迁移时冻结金额字段未清理旧值，门户重复累加",
        handling="{recovered:%H:%M} 修正门户展示口径；数据修复脚本清理旧字段",
    ),
    DemoIncident(
        "收银台5xx短暂尖刺 / Brief 5xx spike on the cashier",
        ("cashier",),
        Source.MONITORING,
        Cause.UNKNOWN,
        Level.D,
        days_ago=29,
        clock="22:40",
        detect=1,
        respond=2,
        recover=3,
        resolve=1440,
        availability_impact="0.04",
        summary="Three minutes of 5xx from the cashier; it recovered by itself and could not be reproduced.",
        cause="原因未能复现：疑似负载均衡节点网络抖动，已补充链路日志",
        handling="{recovered:%H:%M} 自动恢复；补充负载均衡与应用侧链路日志便于下次定位",
    ),
    DemoIncident(
        "工商银行快捷支付成功率下跌 / ICBC quick-pay success rate dropped",
        ("collection",),
        Source.THIRD_PARTY,
        Cause.THIRD_PARTY,
        Level.C,
        days_ago=26,
        clock="14:25",
        detect=8,
        respond=3,
        recover=22,
        resolve=180,
        transactions=940,
        availability_impact="0.18",
        summary="ICBC's core system degraded; the bank phoned us and we routed ICBC cards elsewhere.",
        cause="工商银行核心系统故障，快捷支付接口大量返回系统繁忙",
        handling="{recovered:%H:%M} 工行卡切换到银联通道；银行侧恢复后切回",
        items=(
            DemoItem(
                "银行渠道切换演练（入金） / Bank channel switch-over drill (pay-ins)",
                Kind.DRILL,
                "zhangpeng",
                due=14,
                done=13,
                acceptance="工行卡5分钟内切到银联通道 / ICBC cards moved to UnionPay within 5 min",
            ),
        ),
    ),
    DemoIncident(
        "招商银行代付通道超时 / Payout channel timeouts at CMB",
        ("payout",),
        Source.MONITORING,
        Cause.THIRD_PARTY,
        Level.B,
        days_ago=22,
        clock="20:05",
        detect=3,
        respond=2,
        recover=36,
        resolve=1440,
        users=5800,
        transactions=6200,
        availability_impact="0.60",
        summary="CMB's payout interface timed out; payouts failed until traffic moved to the backup channel.",
        cause="招商银行代付接口超时，通道自动切换阈值配置过高未触发切换",
        handling="{recovered:%H:%M} 手工切换到备用通道（平安银行），失败代付重新发起；自动切换阈值下调",
        notes=(
            Note(9, "确认招行侧超时，准备切换 / CMB side confirmed slow, preparing the switch"),
            Note(20, "切换到备用通道 / switched traffic to the backup channel"),
            Note(36, "失败代付重新发起完成 / failed payouts re-sent"),
        ),
        items=(
            DemoItem(
                "代付通道自动切换阈值下调 / Lower the payout channel auto-switch threshold",
                Kind.FIX,
                "zhangpeng",
                due=3,
                done=2,
                priority=HIGH,
            ),
            DemoItem(
                "银行渠道切换演练（代付） / Bank channel switch-over drill (payouts)",
                Kind.DRILL,
                "engineer",
                due=14,
                status=ItemStatus.IN_PROGRESS,  # overdue
                priority=HIGH,
                verifier="zhangpeng",
                acceptance="招行代付5分钟内切到平安银行，失败单自动重发 / CMB payouts on the backup within 5 min",
            ),
        ),
        close=False,  # 复盘进行中 / post-mortem still open
    ),
    DemoIncident(
        "结算单金额四舍五入差1分 / One-fen rounding difference in settlement statements",
        ("settlement",),
        Source.CUSTOMER,
        Cause.CODE_CHANGE,
        Level.D,
        days_ago=18,
        clock="09:50",
        detect=10,
        respond=5,
        recover=20,
        resolve=2880,
        transactions=37,
        summary="A fee-split refactor rounded each line instead of the total; 37 statements were off by one fen.",
        cause="分账手续费重构后逐笔四舍五入，与合计口径不一致",
        handling="{recovered:%H:%M} 恢复合计后舍入；37笔结算单重新出具",
    ),
    DemoIncident(
        "民生银行前置机自动签退 / CMBC front-end signed off",
        ("bank-gateway",),
        Source.MONITORING,
        Cause.THIRD_PARTY,
        Level.D,
        days_ago=15,
        clock="11:05",
        detect=1,
        respond=3,
        recover=12,
        resolve=120,
        summary="Same failure as CEB in the seed week, caught this time by the new front-end sign-off alert.",
        cause="民生银行前置机自动签退（与光大同类问题）",
        handling="前置机签退告警触发，{recovered:%H:%M} 重新签到；推动各银行前置机统一签到保活",
        items=(
            DemoItem(
                "各银行前置机统一签到保活 / Keep-alive sign-in for every bank front-end",
                Kind.FIX,
                "engineer",
                due=10,
                status=ItemStatus.OPEN,  # overdue: keeps the loop open
                verifier="yangjie",
            ),
        ),
    ),
    DemoIncident(
        "收银台发布后数据库连接池耗尽 / Cashier DB connection pool exhausted after release",
        ("cashier", "collection"),
        Source.MONITORING,
        Cause.CODE_CHANGE,
        Level.A,
        days_ago=11,
        clock="19:30",
        detect=2,
        respond=3,
        recover=64,
        resolve=2880,
        users=23000,
        transactions=41000,
        regulatory_reportable=True,
        availability_impact="0.85",
        summary="A cashier release leaked database connections; payments failed for an hour at evening peak.",
        cause="晚高峰前发布的收银台版本在异常分支未归还数据库连接，连接池耗尽",
        handling="回滚版本并逐台重启实例，{recovered:%H:%M} 成功率恢复至99.9%；已按要求向人行报送",
        notes=(
            Note(8, "确认为刚发布的收银台版本引入，开始回滚 / the new release is the trigger; rolling back"),
            Note(35, "回滚完成但连接未释放，逐台重启 / rollback done, restarting instances one by one"),
            Note(64, "支付成功率恢复至99.9% / payment success rate back to 99.9%"),
        ),
        items=(
            DemoItem(
                "异常分支归还数据库连接 / Return DB connections on error paths",
                Kind.FIX,
                "zhangpeng",
                due=3,
                done=2,
                status=ItemStatus.DONE,
                priority=HIGH,
                verifier="liweinan",
            ),
            DemoItem(
                "数据库连接池使用率监控报警 / Alert on DB connection pool usage",
                Kind.MONITORING,
                "engineer",
                due=5,
                status=ItemStatus.OPEN,  # overdue
                priority=HIGH,
                acceptance="使用率 > 80% 持续1分钟报警 / alert at > 80 % for a minute",
            ),
            DemoItem(
                "必测用例补充：异常分支连接泄漏 / Must-test case: connection leak on error paths",
                Kind.TEST_CASE,
                "liweinan",
                due=14,
                status=ItemStatus.IN_PROGRESS,
            ),
            DemoItem(
                "晚高峰前禁止发布 / No releases before the evening peak",
                Kind.PROCESS,
                "zhangpeng",
                due=21,
                status=ItemStatus.OPEN,
            ),
        ),
        review=(
            "复盘：收银台版本在异常分支未归还数据库连接，晚高峰连接池耗尽，支付失败约1小时。"
            "改进：修复连接泄漏、连接池使用率报警、必测用例、晚高峰前禁止发布。 / "
            "Review: the cashier release leaked connections on an error path; at the evening peak the pool ran dry "
            "and payments failed for about an hour. Changes: fix the leak, alert on pool usage, a must-test case, "
            "no releases before the peak."
        ),
    ),
    DemoIncident(
        "运营后台权限配置错误，客服看不到退款按钮 / Ops console permission change hid the refund button",
        ("ops-console",),
        Source.OTHER,
        Cause.CONFIG_CHANGE,
        Level.D,
        days_ago=8,
        clock="16:45",
        detect=30,
        respond=10,
        recover=90,
        resolve=1440,
        summary="A role clean-up removed the refund permission from the support role.",
        cause="角色权限梳理时误删客服角色的退款权限",
        handling="{recovered:%H:%M} 恢复客服角色退款权限；权限变更增加审批",
        items=(
            DemoItem(
                "权限变更增加审批 / Approval for permission changes",
                Kind.PROCESS,
                "fumin",
                due=7,
                done=6,
                status=ItemStatus.DONE,
            ),
        ),
    ),
    DemoIncident(
        "清结算MQ消费者重启后短暂积压 / Brief settlement MQ backlog after a consumer restart",
        ("settlement",),
        Source.MONITORING,
        Cause.CAPACITY,
        Level.D,
        days_ago=5,
        clock="08:30",
        detect=3,
        respond=4,
        recover=15,
        resolve=None,
        summary="Rebalancing after a consumer restart paused settlement messages for 15 minutes.",
        cause="消费者滚动重启触发分区重平衡，消费暂停",
        handling="{recovered:%H:%M} 积压消费完毕；评估改用协作式重平衡",
        items=(
            DemoItem(
                "评估协作式重平衡 / Evaluate cooperative rebalancing",
                Kind.FIX,
                "yangjie",
                due=14,
                status=ItemStatus.IN_PROGRESS,
                priority=LOW,
            ),
        ),
    ),
    DemoIncident(
        "对账差错报表出现重复数据 / Duplicated rows in the reconciliation error report",
        ("reconciliation",),
        Source.INSPECTION,
        Cause.DATA,
        Level.D,
        minutes_ago=150,
        detect=20,
        respond=10,
        recover=28,
        resolve=None,
        transactions=64,
        summary="The error report listed 64 items twice after a partial re-run.",
        cause="对账任务部分重跑时未清理上次结果",
        handling="{recovered:%H:%M} 删除重复数据；重跑前清理逻辑待上线",
        items=(
            DemoItem(
                "重跑前清理上次结果 / Clear earlier results before a re-run",
                Kind.FIX,
                "yangjie",
                due=7,
                status=ItemStatus.OPEN,
            ),
        ),
    ),
    DemoIncident(
        "运营后台报表导出超时 / Ops console report exports time out",
        ("ops-console",),
        Source.INSPECTION,
        Cause.CAPACITY,
        Level.D,
        minutes_ago=3060,
        detect=45,
        respond=30,
        recover=None,
        resolve=None,
        summary="Large report exports time out; the order table has not been archived for two years.",
        cause="订单大表未归档，导出查询扫描全表（排查中）",
        handling="临时限制导出时间跨度为31天；大表归档方案评审中",
        notes=(
            Note(120, "限制导出时间跨度为31天 / limited exports to a 31-day range"),
            Note(1500, "大表归档方案初稿完成 / first draft of the archiving plan"),
        ),
        items=(
            DemoItem(
                "订单大表归档 / Archive the order table",
                Kind.FIX,
                "fumin",
                due=30,
                status=ItemStatus.OPEN,
                priority=HIGH,
            ),
        ),
    ),
    DemoIncident(
        "企业钱包H5看账页面白屏 / Enterprise wallet H5 statement page blank",
        ("merchant-portal",),
        Source.CUSTOMER,
        Cause.CODE_CHANGE,
        Level.D,
        minutes_ago=20,
        detect=6,
        respond=4,
        recover=None,
        resolve=None,
        users=60,
        summary="Merchants report a blank statement page in the wallet H5 after this morning's release.",
        cause="疑似发布后CDN仍缓存旧版静态资源，排查中",
        handling="已刷新CDN缓存，观察中",
        notes=(Note(12, "刷新CDN缓存，部分商户恢复 / purged the CDN cache, some merchants recovered"),),
    ),
)


# -- Alerts (stability app) ---------------------------------------------------------------------------
# The last ALERT_DAYS days of each system's alert rules, as one Alertmanager per team delivered them,
# so the 5-minute follow-up rate, its trend and the rules most often missed have something to show.
# Each team has a habit: the share of its alerts followed up within the window and the share followed
# up late; the rest are never followed up. Alerts of the last RECENT_UNFOLLOWED_HOURS are left open
# and unfollowed, for the engineer's inbox.
ALERT_DAYS = 100
RECENT_UNFOLLOWED_HOURS = 6


@dataclass(frozen=True)
class DemoAlertRule:
    system: str
    alertname: str
    severity: str
    summary: str
    per_day: float  # alerts a day on average


ALERT_RULES = (
    DemoAlertRule("cashier", "PaymentSuccessRateDrop", "critical", "收银台支付成功率下跌 / success rate dropped", 0.6),
    DemoAlertRule("cashier", "HTTP5xxSpike", "warning", "收银台5xx升高 / 5xx rising on the cashier", 1.0),
    DemoAlertRule("payout", "PayoutTimeout", "critical", "代付超时 / payouts timing out", 0.5),
    DemoAlertRule("collection", "DBPoolUsageHigh", "warning", "数据库连接池使用率高 / DB pool usage high", 0.8),
    DemoAlertRule("account-core", "LedgerPostingLag", "critical", "账户记账延迟 / ledger posting lag", 0.4),
    DemoAlertRule("bill-service", "BillJobFailed", "warning", "账单任务失败 / bill job failed", 0.3),
    DemoAlertRule("bank-gateway", "BankChannelTimeout", "critical", "银行通道超时 / bank channel timeouts", 1.2),
    DemoAlertRule(
        "bank-statement", "StatementFetchFailed", "warning", "银行流水获取失败 / statements not fetched", 0.6
    ),
    DemoAlertRule("settlement", "SettlementBatchLate", "critical", "清算批次延迟 / settlement batch late", 0.3),
    DemoAlertRule("reconciliation", "ReconMismatch", "warning", "对账差异 / reconciliation mismatch", 0.5),
    DemoAlertRule("merchant-portal", "PortalLatencyHigh", "warning", "商户门户延迟高 / portal latency high", 0.4),
    DemoAlertRule("pos", "TerminalOfflineRate", "warning", "POS终端离线率高 / terminals offline", 0.3),
)

# team: (followed up in time, followed up late); the rest never.
FOLLOW_UP_HABITS = {
    "payments": (0.9, 0.06),
    "accounts": (0.82, 0.1),
    "bank-channels": (0.68, 0.17),
    "settlement": (0.78, 0.12),
}


# -- drills (演练) and items beyond incidents -------------------------------------------------------


@dataclass(frozen=True)
class DemoDrill:
    """A drill, made through incidents.drills. `when` places it: "last_quarter" (held 40 days into the
    quarter before this one), "days_ago" (held `days` days ago) or "next_month" (planned, not held)."""

    title: str
    scenario: str
    team: str
    systems: tuple[str, ...]
    when: str
    days: int = 0
    result: str = ""
    switch_over_seconds: int | None = None
    findings: str = ""
    # Findings turned into items: `due` counts days from today (negative: past).
    items: tuple[DemoItem, ...] = ()


DRILLS = (
    DemoDrill(
        "银行通道切换演练 / bank channel switch-over",
        "bank_channel_switch",
        "payments",
        ("cashier", "payout", "collection", "bank-gateway"),
        "last_quarter",
        result="partly",
        switch_over_seconds=95,
        findings="切换到备用通道用时 1 分 35 秒；切换后 3 笔代付回调重复，对账多出 3 条 / "
        "switched in 1 min 35 s; 3 payout callbacks came twice after the switch",
        items=(
            DemoItem(
                "切换时对回调去重 / dedupe callbacks after a channel switch",
                Kind.DRILL,
                "zhangpeng",
                due=14,
                status=ItemStatus.IN_PROGRESS,
                priority=HIGH,
                acceptance="下次切换演练无重复回调 / no duplicate callback in the next switch-over drill",
            ),
        ),
    ),
    DemoDrill(
        "大促前容量压测 / capacity test before the sales peak",
        "capacity",
        "payments",
        ("cashier", "payout"),
        "days_ago",
        days=10,
        result="passed",
        findings="收银台 3 倍日常峰值下 P99 < 300 ms / cashier held 3x the daily peak, p99 under 300 ms",
    ),
    DemoDrill(
        "账户核心主备切换演练 / account core failover",
        "failover",
        "accounts",
        ("account-core",),
        "next_month",
    ),
)


@dataclass(frozen=True)
class DemoOtherItem:
    """An item of a review meeting (稳定性双月会), an audit or governance work, of a team; `item.due`
    counts days from today."""

    source: str
    note: str
    team: str
    item: DemoItem


OTHER_ITEMS = (
    DemoOtherItem(
        ActionItem.Source.REVIEW_MEETING,
        "稳定性双月会 / bimonthly stability review",
        "payments",
        DemoItem(
            "梳理P0系统报警阈值 / review the alert thresholds of the P0 systems",
            Kind.MONITORING,
            "engineer",
            due=10,
            status=ItemStatus.OPEN,
        ),
    ),
    DemoOtherItem(
        ActionItem.Source.REVIEW_MEETING,
        "稳定性双月会 / bimonthly stability review",
        "bank-channels",
        DemoItem(
            "补齐银行通道应急预案 / complete the bank channels' runbooks",
            Kind.PROCESS,
            "yangjie",
            due=-3,
            status=ItemStatus.IN_PROGRESS,
            priority=HIGH,
        ),
    ),
    DemoOtherItem(
        ActionItem.Source.GOVERNANCE,
        "P0/P1 数据库 default null 规范",
        "accounts",
        DemoItem(
            "P0/P1库主键与关联字段禁止 default null / no nullable key columns in P0/P1 databases",
            Kind.FIX,
            "fumin",
            due=30,
            status=ItemStatus.IN_PROGRESS,
            acceptance="DBA 扫描报告无 default null 主键 / the DBA scan finds no nullable key",
        ),
    ),
)

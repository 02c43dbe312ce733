// anjian control room: Chinese (zh-CN) and English. Chinese by default where the browser asks for it;
// the operator's choice is kept. Static text carries data-i18n (text), data-i18n-placeholder,
// data-i18n-title and data-i18n-aria keys; scripts call anjianI18n.t(key, {name: value}).
// anjianI18n.behaviours lists the behaviour codes the service names, in its table's order.
"use strict";

window.anjianI18n = (() => {
  const LANG_KEY = "anjian.lang";
  // Each text in English and Chinese, side by side: a translator sees both.
  const TEXTS = {
    title: ["anjian · control room", "安监 · 监控中心"],
    control_room: ["control room", "监控中心"],
    api_token: ["API token", "API 令牌"],
    connect: ["Connect", "连接"],
    cameras: ["Cameras", "摄像头"],
    no_camera_data: ["No camera data yet.", "暂无摄像头数据。"],
    no_cameras: ["This service reads no cameras itself.", "本服务不直接读取摄像头。"],
    all_colours: ["All colours", "全部等级"],
    all_states: ["All states", "全部状态"],
    open_states: ["Open (not closed)", "未关闭"],
    all_behaviours: ["All behaviours", "全部行为"],
    camera_filter: ["Camera", "摄像头"],
    no_events: ["No events.", "暂无告警。"],
    no_snapshot: ["No snapshot.", "无抓拍图。"],
    keys: ["Keys: j / k move · a acknowledge · d dispatch · r resolve · f false alarm · c close · m sound", "快捷键：j / k 上下 · a 确认 · d 派单 · r 处置完成 · f 误报 · c 关闭 · m 声音"],
    counters: ["Unacknowledged alerts by colour", "各等级未确认告警数"],
    sound_on: ["Sound on", "声音开"],
    sound_off: ["Sound off", "声音关"],
    sound_title: ["Tone for new red and orange alerts (m)", "新的红色、橙色告警时响铃 (m)"],
    desktop_alerts: ["Desktop alerts", "桌面通知"],
    assignee: ["Assignee (for dispatch)", "处置人（派单用）"],
    note: ["Note: work order, disposal, or what the false alarm was", "备注：工单、处置情况或误报原因"],
    false_because: ["False alarm because…", "误报原因…"],
    reason_reflection: ["Reflection or light", "反光或灯光"],
    reason_misread: ["Person or object misread", "人员或物体误识别"],
    reason_camera: ["Camera fault", "摄像头故障"],
    reason_test: ["Test or drill", "测试或演练"],
    reason_other: ["Other (say in the note)", "其他（请在备注中说明）"],
    read_only: ["Read only: this token may look, not act.", "只读：此令牌只能查看，不能处置。"],
    read_only_title: ["A {role} token may only look: ask for an operator token.", "{role} 令牌只能查看：请使用值班员令牌。"],
    audit_trail: ["Audit trail", "处置记录"],
    note_col: ["Note", "备注"],
    when: ["When", "时间"],
    who: ["Who", "人员"],
    what: ["What", "操作"],
    state: ["State", "状态"],
    severity: ["Colour", "等级"],
    behaviour: ["Behaviour", "行为"],
    language: ["Language", "语言"],
    f_site: ["Site / workshop", "厂区 / 车间"],
    f_started: ["Started", "开始"],
    f_last_seen: ["Last seen", "最近出现"],
    f_ended: ["Ended", "结束"],
    f_confidence: ["Confidence", "置信度"],
    f_colour: ["Colour", "等级"],
    f_assignee: ["Assignee", "处置人"],
    f_model: ["Model", "模型"],
    f_track: ["Tracked object", "跟踪目标"],
    f_reading: ["Reading", "读数"],
    f_peak: ["Peak", "峰值"],
    f_threshold: ["Limit crossed", "越过阈值"],
    trend_title: ["{quantity} ({unit}) around the alert", "告警前后 {quantity}（{unit}）趋势"],
    trend_none: ["No readings in this window.", "该时段无读数。"],
    f_zone: ["Zone", "区域"],
    escalated: ["{colour} (detected {detected}, escalated {n}×)", "{colour}（识别为{detected}，已升级 {n} 次）"],
    ongoing: ["ongoing", "持续中"],
    ended: ["ended", "已结束"],
    live: ["live", "实时"],
    offline: ["offline", "离线"],
    reconnecting: ["reconnecting…", "重连中…"],
    enter_token: ["enter a token", "请输入令牌"],
    snapshot_alt: ["Snapshot of the event", "告警抓拍图"],
    live_alt: ["Live: the camera now", "实时画面"],
    online: ["online", "在线"],
    connecting: ["connecting", "连接中"],
    stalled: ["stalled", "卡顿"],
    failed_config: ["bad config", "配置错误"],
    stale: ["not reporting", "无上报"],
    camera_node: ["node {node}", "节点 {node}"],
    camera_line: ["{state} · {fps} fps · {reconnects} reconnects", "{state} · {fps} 帧/秒 · 重连 {reconnects} 次"],
    e_dispatch: ["Dispatch needs an assignee.", "派单需要填写处置人。"],
    e_resolve: ["Resolving needs a disposal note.", "处置完成需要填写处置说明。"],
    e_reason: ["Choose why it is a false alarm.", "请选择误报原因。"],
    e_other: ["Say what it was in the note.", "请在备注中说明是什么。"],
    e_viewer: ["This token may only read: ask for an operator token.", "此令牌只能查看：请使用值班员令牌。"],
    e_refused: ["The token was refused: check it.", "令牌被拒绝：请检查。"],
    e_forbidden: ["This token may not read events.", "此令牌不能查看告警。"],
    e_too_many: ["Too many refused tokens from this computer: wait a minute.", "本机被拒绝的令牌过多：请稍等一分钟。"],
    e_load: ["Cannot load events: {error}", "无法加载告警：{error}"],
    e_live: ["Live feed: {error}", "实时推送：{error}"],
    e_session: ["Session: {error}", "会话：{error}"],
    e_audit: ["Audit trail: {error}", "处置记录：{error}"],
    e_link_missing: ["The linked alert was not found.", "未找到链接中的告警。"],
    e_link: ["The linked alert: {error}", "链接中的告警：{error}"],
    times_in: ["Times: {zone}", "时间：{zone}"],
    stale_since: ["Not reporting since {since}", "自 {since} 起无上报"],
    queue: ["Alert queue", "告警队列"],
    announce_new: ["New {colour} alert: {behaviour}, {where}", "新的{colour}告警：{behaviour}，{where}"],
    announce_escalated: ["Escalated to {colour}: {behaviour}, {where}", "已升级为{colour}：{behaviour}，{where}"],
    red: ["red", "红色"],
    orange: ["orange", "橙色"],
    yellow: ["yellow", "黄色"],
    blue: ["blue", "蓝色"],
    raised: ["raised", "待确认"],
    acknowledged: ["acknowledged", "已确认"],
    dispatched: ["dispatched", "已派单"],
    resolved: ["resolved", "已处置"],
    false_alarm: ["false alarm", "误报"],
    closed: ["closed", "已关闭"],
    a_acknowledge: ["Acknowledge", "确认"],
    a_dispatch: ["Dispatch", "派单"],
    a_resolve: ["Resolve", "处置完成"],
    a_false_alarm: ["False alarm", "误报"],
    a_close: ["Close", "关闭"],
    a_raise: ["Raised", "告警"],
    a_escalate: ["Escalated", "升级"],
    a_remark: ["Remark from the supervising office", "监管部门批注"],
    a_press_for_action: ["Pressed for action by the supervising office", "监管部门督办"],
  };
  const LANGS = ["en", "zh-CN"];
  // The behaviours' names (b_<code> keys) come from the service's one table (behaviours.js, loaded before
  // this file, made from service/behaviour_names.py), in its order; a code it does not name shows as it is.
  const NAMED = window.anjianBehaviours || [];
  for (const b of NAMED) TEXTS[`b_${b.code}`] = LANGS.map((l) => b[l]);
  const BEHAVIOURS = NAMED.map((b) => b.code);

  function preferred() {
    const kept = localStorage.getItem(LANG_KEY);
    if (kept && LANGS.includes(kept)) return kept;
    const asked = navigator.languages || [navigator.language || ""];
    return asked.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
  }

  let lang = preferred();

  function has(key) { return key in TEXTS; }

  function t(key, vars = {}) {
    const texts = TEXTS[key];
    const text = texts ? texts[LANGS.indexOf(lang)] || texts[0] : key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }

  // Fill every element that carries a key, under `root`.
  function apply(root = document) {
    document.documentElement.lang = lang;
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
    for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
    for (const el of root.querySelectorAll("[data-i18n-alt]")) el.alt = t(el.dataset.i18nAlt);
  }

  function setLang(next) {
    if (!LANGS.includes(next)) return;
    lang = next;
    localStorage.setItem(LANG_KEY, next);
    apply();
  }

  return { t, has, apply, setLang, get lang() { return lang; }, languages: LANGS, behaviours: BEHAVIOURS };
})();

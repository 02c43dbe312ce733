// anjian control room: Chinese (zh-CN) and English. Chinese by default where the browser asks for it;
// the operator's choice is kept. Static text carries data-i18n (text), data-i18n-placeholder,
// data-i18n-title and data-i18n-aria keys; scripts call anjianI18n.t(key, {name: value}).
"use strict";

window.anjianI18n = (() => {
  const LANG_KEY = "anjian.lang";
  const TEXTS = {
    "en": {
      "title": "anjian · control room", "control_room": "control room", "api_token": "API token", "connect": "Connect",
      "cameras": "Cameras", "no_camera_data": "No camera data yet.", "no_cameras": "This service reads no cameras itself.",
      "all_colours": "All colours", "all_states": "All states", "open_states": "Open (not closed)",
      "all_behaviours": "All behaviours", "camera_filter": "Camera", "no_events": "No events.", "no_snapshot": "No snapshot.",
      "keys": "Keys: j / k move · a acknowledge · d dispatch · r resolve · f false alarm · c close · m sound",
      "counters": "Unacknowledged alerts by colour", "sound_on": "Sound on", "sound_off": "Sound off",
      "sound_title": "Tone for new red and orange alerts (m)", "desktop_alerts": "Desktop alerts",
      "assignee": "Assignee (for dispatch)", "note": "Note: work order, disposal, or what the false alarm was",
      "false_because": "False alarm because…", "reason_reflection": "Reflection or light",
      "reason_misread": "Person or object misread", "reason_camera": "Camera fault", "reason_test": "Test or drill",
      "reason_other": "Other (say in the note)", "read_only": "Read only: this token may look, not act.",
      "read_only_title": "A {role} token may only look: ask for an operator token.",
      "audit_trail": "Audit trail", "note_col": "Note", "when": "When", "who": "Who", "what": "What", "state": "State",
      "severity": "Colour", "behaviour": "Behaviour", "language": "Language",
      "f_site": "Site / workshop", "f_started": "Started", "f_last_seen": "Last seen", "f_ended": "Ended",
      "f_confidence": "Confidence", "f_colour": "Colour", "f_assignee": "Assignee", "f_model": "Model", "f_zone": "Zone",
      "escalated": "{colour} (detected {detected}, escalated {n}×)",
      "ongoing": "ongoing", "ended": "ended", "live": "live", "offline": "offline", "reconnecting": "reconnecting…",
      "enter_token": "enter a token", "snapshot_alt": "Snapshot of the event", "live_alt": "Live: the camera now",
      "online": "online", "connecting": "connecting", "stalled": "stalled", "failed_config": "bad config",
      "camera_line": "{state} · {fps} fps · {reconnects} reconnects",
      "e_dispatch": "Dispatch needs an assignee.", "e_resolve": "Resolving needs a disposal note.",
      "e_reason": "Choose why it is a false alarm.", "e_other": "Say what it was in the note.",
      "e_viewer": "This token may only read: ask for an operator token.",
      "e_refused": "The token was refused: check it.", "e_forbidden": "This token may not read events.",
      "e_too_many": "Too many refused tokens from this computer: wait a minute.",
      "e_load": "Cannot load events: {error}", "e_live": "Live feed: {error}", "e_session": "Session: {error}",
      "e_audit": "Audit trail: {error}",
      "red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue",
      "raised": "raised", "acknowledged": "acknowledged", "dispatched": "dispatched", "resolved": "resolved",
      "false_alarm": "false alarm", "closed": "closed",
      "a_acknowledge": "Acknowledge", "a_dispatch": "Dispatch", "a_resolve": "Resolve", "a_false_alarm": "False alarm",
      "a_close": "Close", "a_raise": "Raised", "a_escalate": "Escalated",
      "b_smoking": "Smoking", "b_open_flame": "Open flame", "b_blocked_exit": "Blocked exit",
      "b_fallen_person": "Fallen person", "b_uncleaned_dust": "Uncleaned dust",
      "b_absence_from_post": "Absence from post", "b_camera_fault": "Camera fault",
    },
    "zh-CN": {
      "title": "安监 · 监控中心", "control_room": "监控中心", "api_token": "API 令牌", "connect": "连接",
      "cameras": "摄像头", "no_camera_data": "暂无摄像头数据。", "no_cameras": "本服务不直接读取摄像头。",
      "all_colours": "全部等级", "all_states": "全部状态", "open_states": "未关闭",
      "all_behaviours": "全部行为", "camera_filter": "摄像头", "no_events": "暂无告警。", "no_snapshot": "无抓拍图。",
      "keys": "快捷键：j / k 上下 · a 确认 · d 派单 · r 处置完成 · f 误报 · c 关闭 · m 声音",
      "counters": "各等级未确认告警数", "sound_on": "声音开", "sound_off": "声音关",
      "sound_title": "新的红色、橙色告警时响铃 (m)", "desktop_alerts": "桌面通知",
      "assignee": "处置人（派单用）", "note": "备注：工单、处置情况或误报原因",
      "false_because": "误报原因…", "reason_reflection": "反光或灯光",
      "reason_misread": "人员或物体误识别", "reason_camera": "摄像头故障", "reason_test": "测试或演练",
      "reason_other": "其他（请在备注中说明）", "read_only": "只读：此令牌只能查看，不能处置。",
      "read_only_title": "{role} 令牌只能查看：请使用值班员令牌。",
      "audit_trail": "处置记录", "note_col": "备注", "when": "时间", "who": "人员", "what": "操作", "state": "状态",
      "severity": "等级", "behaviour": "行为", "language": "语言",
      "f_site": "厂区 / 车间", "f_started": "开始", "f_last_seen": "最近出现", "f_ended": "结束",
      "f_confidence": "置信度", "f_colour": "等级", "f_assignee": "处置人", "f_model": "模型", "f_zone": "区域",
      "escalated": "{colour}（识别为{detected}，已升级 {n} 次）",
      "ongoing": "持续中", "ended": "已结束", "live": "实时", "offline": "离线", "reconnecting": "重连中…",
      "enter_token": "请输入令牌", "snapshot_alt": "告警抓拍图", "live_alt": "实时画面",
      "online": "在线", "connecting": "连接中", "stalled": "卡顿", "failed_config": "配置错误",
      "camera_line": "{state} · {fps} 帧/秒 · 重连 {reconnects} 次",
      "e_dispatch": "派单需要填写处置人。", "e_resolve": "处置完成需要填写处置说明。",
      "e_reason": "请选择误报原因。", "e_other": "请在备注中说明是什么。",
      "e_viewer": "此令牌只能查看：请使用值班员令牌。",
      "e_refused": "令牌被拒绝：请检查。", "e_forbidden": "此令牌不能查看告警。",
      "e_too_many": "本机被拒绝的令牌过多：请稍等一分钟。",
      "e_load": "无法加载告警：{error}", "e_live": "实时推送：{error}", "e_session": "会话：{error}",
      "e_audit": "处置记录：{error}",
      "red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色",
      "raised": "待确认", "acknowledged": "已确认", "dispatched": "已派单", "resolved": "已处置",
      "false_alarm": "误报", "closed": "已关闭",
      "a_acknowledge": "确认", "a_dispatch": "派单", "a_resolve": "处置完成", "a_false_alarm": "误报",
      "a_close": "关闭", "a_raise": "告警", "a_escalate": "升级",
      "b_smoking": "吸烟", "b_open_flame": "明火", "b_blocked_exit": "安全出口堵塞",
      "b_fallen_person": "人员倒地", "b_uncleaned_dust": "粉尘未清理",
      "b_absence_from_post": "脱岗", "b_camera_fault": "摄像头故障",
    },
  };

  function preferred() {
    const kept = localStorage.getItem(LANG_KEY);
    if (kept && TEXTS[kept]) return kept;
    const asked = navigator.languages || [navigator.language || ""];
    return asked.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
  }

  let lang = preferred();

  function has(key) { return key in TEXTS.en; }

  function t(key, vars = {}) {
    const text = (TEXTS[lang] && TEXTS[lang][key]) || TEXTS.en[key] || key;
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
    if (!TEXTS[next]) return;
    lang = next;
    localStorage.setItem(LANG_KEY, next);
    apply();
  }

  return { t, has, apply, setLang, get lang() { return lang; }, languages: Object.keys(TEXTS) };
})();

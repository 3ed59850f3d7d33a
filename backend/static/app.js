// KoVR pages: streaming answers over SSE, the composer (IME-safe Enter, images), small UI bits.
// htmx does the form posts and fragment swaps; this file adds what htmx does not.
(() => {
  "use strict";
  const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
  const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
  const $ = (sel, root = document) => root.querySelector(sel);
  const csrf = () => document.body.dataset.csrf || "";
  const uiText = (() => {
    try { return JSON.parse($("#ui-text").textContent); } catch { return {}; }
  })();
  const say = (key) => uiText[key] || key;

  // ---------- toast ----------
  let toastTimer = 0;
  function toast(message) {
    const box = $("#toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  async function errorText(response) {
    try {
      const type = response.headers.get("content-type") || "";
      if (type.includes("json")) return (await response.json()).error.message;
      const body = (await response.text()).trim();
      if (body && body.length < 300) return body;
    } catch { /* fall through */ }
    return say("error_generic");
  }

  // ---------- streaming answers ----------
  const streams = new Map(); // message id -> EventSource

  function nearBottom(list) { return list.scrollHeight - list.scrollTop - list.clientHeight < 120; }
  function scrollToEnd(force) {
    const list = $("#messages");
    if (list && (force || nearBottom(list))) list.scrollTop = list.scrollHeight;
  }

  function updateBusy() {
    const busy = streams.size > 0;
    const stop = $("#stop-button"), send = $("#send-button"), list = $("#messages");
    if (stop) { stop.hidden = !busy; stop.dataset.messageId = busy ? [...streams.keys()].pop() : ""; }
    if (send) send.hidden = busy;
    if (list) list.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function rerender(id) {
    // The finished answer comes back rendered from Markdown (and sanitised) by the server.
    const article = document.getElementById(`m-${id}`);
    if (!article || !window.htmx) return;
    const follow = nearBottom($("#messages"));
    htmx.ajax("GET", `/m/${id}`, { target: article, swap: "outerHTML" }).then(() => scrollToEnd(follow));
  }

  function attach(article) {
    const id = article.dataset.messageId;
    if (!id || streams.has(id)) return;
    const out = $(".stream-text", article);
    const source = new EventSource(article.dataset.streamUrl);
    streams.set(id, source);
    updateBusy();
    const finish = () => {
      source.close();
      streams.delete(id);
      updateBusy();
      rerender(id);
    };
    source.addEventListener("token", (event) => {
      out.textContent += JSON.parse(event.data).text;
      scrollToEnd(false);
    });
    source.addEventListener("done", finish);
    source.addEventListener("error", (event) => {
      if (event.data) { // our own `event: error` {code, message}: the re-rendered answer shows it inline
        finish();
      } else if (source.readyState === EventSource.CLOSED) { // refused (e.g. signed out): show what is saved
        finish();
      } // otherwise the browser reconnects by itself and resumes with Last-Event-ID
    });
  }

  // The message list is replaced (branch switch, edit, regenerate, continue, delete): streams of
  // the articles going away are closed without re-rendering; the new list attaches its own.
  function detachAll() {
    streams.forEach((source) => source.close());
    streams.clear();
    updateBusy();
  }

  function attachAll(root) {
    if (root.matches && root.matches("[data-stream-url]")) attach(root);
    root.querySelectorAll && root.querySelectorAll("[data-stream-url]").forEach(attach);
  }

  async function stopGeneration(button) {
    const id = button.dataset.messageId;
    if (!id) return;
    button.disabled = true;
    try {
      const response = await fetch(`/api/v1/messages/${id}/stop`, {
        method: "POST", headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin",
      });
      if (!response.ok && response.status !== 409) toast(await errorText(response));
    } catch { toast(say("error_network")); }
    finally { button.disabled = false; }
  }

  // ---------- composer ----------
  function composerHasInput(form) {
    const text = $("#composer-input", form);
    return (text && text.value.trim() !== "") || form.querySelector("input[name=image_ids]") !== null;
  }

  function autoGrow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  function onComposerKey(event) {
    if (event.key !== "Enter" || event.shiftKey) return;
    // During IME composition (Hangul) Enter confirms the syllable; it must never send.
    if (event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    const form = event.target.form;
    if (streams.size === 0 && composerHasInput(form)) form.requestSubmit();
  }

  function resetComposer(form) {
    const text = $("#composer-input", form);
    text.value = "";
    autoGrow(text);
    $("#attachments", form).replaceChildren();
    text.focus();
  }

  // ---------- images: picker, drag-and-drop, paste ----------
  async function upload(file) {
    if (!IMAGE_TYPES.includes(file.type)) { toast(uiText.image_unsupported || say("error_generic")); return; }
    if (file.size > MAX_IMAGE_BYTES) { toast(uiText.image_too_large || say("error_generic")); return; }
    const box = $("#attachments");
    const item = document.createElement("div");
    item.className = "attachment uploading";
    const preview = document.createElement("img");
    preview.alt = file.name;
    preview.src = URL.createObjectURL(file);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", say("remove"));
    remove.addEventListener("click", () => item.remove());
    item.append(preview, remove);
    box.append(item);
    const body = new FormData();
    body.append("file", file);
    try {
      const response = await fetch("/api/v1/images", {
        method: "POST", body, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin",
      });
      if (!response.ok) { item.remove(); toast(await errorText(response)); return; }
      const saved = await response.json();
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "image_ids";
      field.value = saved.id;
      item.append(field);
      item.classList.remove("uploading");
      item.dataset.imageId = saved.id;
    } catch {
      item.remove();
      toast(say("error_network"));
    }
  }

  function wireComposer(form) {
    const text = $("#composer-input", form);
    const picker = $("#file-input", form);
    const zone = $("#drop-zone", form);
    text.addEventListener("keydown", onComposerKey);
    text.addEventListener("input", () => autoGrow(text));
    picker.addEventListener("change", () => { [...picker.files].forEach(upload); picker.value = ""; });
    text.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
      if (files.length) { event.preventDefault(); files.forEach(upload); }
    });
    const chat = $("#chat") || zone;
    chat.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    chat.addEventListener("dragleave", (event) => { if (!chat.contains(event.relatedTarget)) zone.classList.remove("dragging"); });
    chat.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      [...(event.dataTransfer?.files || [])].forEach(upload);
    });
    form.addEventListener("htmx:beforeRequest", (event) => {
      if (event.detail.elt !== form) return;
      if (!composerHasInput(form) || streams.size > 0 || form.querySelector(".attachment.uploading")) {
        event.preventDefault();
      }
    });
    form.addEventListener("htmx:afterRequest", (event) => {
      if (event.detail.elt === form && event.detail.successful) {
        resetComposer(form);
        document.getElementById("empty-state")?.remove(); // every message of the branch was deleted
        // The last answer of the branch is the only one that may continue.
        document.querySelectorAll("article.msg [data-action=continue]").forEach((b) => b.remove());
        scrollToEnd(true);
      }
    });
    if (window.matchMedia("(min-width: 801px)").matches) text.focus();
  }

  // ---------- edit a sent message (a new branch) ----------
  function openEdit(article) {
    const form = $(".edit-form", article);
    if (!form) return;
    article.classList.add("editing");
    form.hidden = false;
    const input = $(".edit-input", form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    autoGrow(input);
  }

  function closeEdit(article) {
    const form = $(".edit-form", article);
    if (!form) return;
    article.classList.remove("editing");
    form.hidden = true;
    const input = $(".edit-input", form);
    input.value = input.defaultValue;
  }

  function onEditKey(event) {
    const input = event.target;
    if (event.key === "Escape") { closeEdit(input.closest("article")); return; }
    if (event.key !== "Enter" || event.shiftKey) return;
    // As in the composer: Enter that confirms a Hangul syllable (IME composition) never submits.
    if (event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (input.value.trim() !== "" && streams.size === 0) input.form.requestSubmit();
  }

  // ---------- page-wide clicks ----------
  async function copy(button) {
    const value = button.dataset.raw || "";
    try {
      await navigator.clipboard.writeText(value);
    } catch { // not a secure context: the old way
      const area = document.createElement("textarea");
      area.value = value;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    toast(say("copied"));
  }

  // Sidebar search: after a pause in typing, and never on a half-composed Hangul syllable ("ㅅ" on
  // the way to "세"): inputs during IME composition wait for its compositionend.
  function wireSearch(box) {
    let timer = 0;
    let last = box.value;
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (box.value === last) return;
        last = box.value;
        htmx.trigger(box, "search-now");
      }, 300);
    };
    box.addEventListener("input", (event) => { if (!event.isComposing) later(); });
    box.addEventListener("compositionend", later);
  }

  function setSidebar(open) {
    document.body.classList.toggle("sidebar-open", open);
    const toggle = $(".menu-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    const scrim = $(".scrim");
    if (scrim) scrim.hidden = !open;
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const action = target.dataset.action;
    if (action === "copy") copy(target);
    else if (action === "stop") stopGeneration(target);
    else if (action === "edit") openEdit(target.closest("article"));
    else if (action === "cancel-edit") closeEdit(target.closest("article"));
    else if (action === "toggle-sidebar") setSidebar(!document.body.classList.contains("sidebar-open"));
    else if (action === "close-sidebar") setSidebar(false);
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.matches && event.target.matches(".edit-input")) { onEditKey(event); return; }
    if (event.key !== "Escape") return;
    if (document.body.classList.contains("sidebar-open")) setSidebar(false);
    const rename = event.target.closest && event.target.closest(".rename-form");
    if (rename) rename.querySelector("button[type=button]").click();
  });

  // htmx errors (4xx/5xx, network) become a friendly message instead of nothing happening.
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    const body = (xhr.responseText || "").trim();
    let message = body && body.length < 300 && !body.startsWith("<") ? body : say("error_generic");
    try { message = JSON.parse(body).error.message; } catch { /* plain text */ }
    toast(message);
  });
  document.addEventListener("htmx:sendError", () => toast(say("error_network")));
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "messages" && event.detail.requestConfig?.elt?.id !== "composer"
        && event.detail.xhr.status < 400) detachAll();
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "messages" && $("#messages [data-stream-url]")) scrollToEnd(true);
  });
  document.addEventListener("input", (event) => {
    if (event.target.matches && event.target.matches(".edit-input")) autoGrow(event.target);
  });

  function start() {
    const form = $("#composer");
    if (form) wireComposer(form);
    const search = $("#conversation-search");
    if (search && window.htmx) wireSearch(search);
    attachAll(document.body);
    if (window.htmx) htmx.onLoad((element) => attachAll(element));
    scrollToEnd(true);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

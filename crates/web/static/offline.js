// tianguis offline queue: an enhancement for agents on a connection that drops. Forms marked
// data-offline are sent with fetch; when the network fails, the form is kept on this device as a
// draft (with its idempotency key, so a repeat changes nothing) and sent again when the network
// is back (every few seconds, on "online", and on every page load). A draft the server refuses
// (sold out, price changed, invalid) stays, with the server's reason, for the agent to resolve.
// Pages work without this script.
(function () {
  "use strict";
  var KEY = "tianguis-drafts";
  var sending = false;

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  function save(d) {
    try { localStorage.setItem(KEY, JSON.stringify(d)); return true; } catch (e) { return false; }
  }
  function box() { return document.querySelector("[data-offline-status]"); }

  function show() {
    var el = box();
    if (!el) return;
    var drafts = load();
    el.textContent = "";
    var waiting = drafts.filter(function (d) { return !d.error; }).length;
    if (waiting > 0) {
      var p = document.createElement("p");
      p.className = "muted";
      p.textContent = (el.getAttribute("data-waiting") || "{n}").replace("{n}", String(waiting));
      el.appendChild(p);
    }
    drafts.forEach(function (d) {
      if (!d.error) return;
      var p = document.createElement("p");
      p.className = "err";
      p.textContent = d.label + ": " + d.error + " ";
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = el.getAttribute("data-discard") || "x";
      b.addEventListener("click", function () {
        save(load().filter(function (x) { return x.id !== d.id; }));
        show();
      });
      p.appendChild(b);
      el.appendChild(p);
    });
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(r.result); };
      r.onerror = reject;
      r.readAsDataURL(file);
    });
  }

  function entriesOf(form) {
    var fd = new FormData(form);
    var out = [];
    var files = [];
    fd.forEach(function (v, k) {
      if (typeof v === "string") { out.push([k, v]); }
      else if (v && v.size > 0) { files.push([k, v]); }
    });
    return Promise.all(files.map(function (kv) {
      return readFile(kv[1]).then(function (data) {
        out.push([kv[0], { name: kv[1].name, data: data }]);
      });
    })).then(function () { return out; });
  }

  function bodyOf(draft) {
    if (draft.multipart) {
      var fd = new FormData();
      draft.entries.forEach(function (kv) {
        var v = kv[1];
        if (typeof v === "string") { fd.append(kv[0], v); return; }
        var parts = v.data.split(",");
        var type = (parts[0].match(/data:([^;]+)/) || [])[1] || "application/octet-stream";
        var bin = atob(parts[1] || "");
        var bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        fd.append(kv[0], new Blob([bytes], { type: type }), v.name);
      });
      return fd;
    }
    var p = new URLSearchParams();
    draft.entries.forEach(function (kv) { p.append(kv[0], kv[1]); });
    return p;
  }

  function send(draft) {
    return fetch(draft.action, { method: "POST", body: bodyOf(draft), credentials: "same-origin" });
  }

  function reason(html, status) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var e = doc.querySelector(".err");
    return e ? e.textContent.trim() : "HTTP " + status;
  }

  function flush() {
    if (sending) return;
    var drafts = load();
    if (!drafts.some(function (d) { return !d.error; })) return;
    sending = true;
    var keep = [];
    var chain = Promise.resolve();
    drafts.forEach(function (d) {
      chain = chain.then(function () {
        if (d.error) { keep.push(d); return; }
        return send(d).then(function (r) {
          if (r.ok) return; // arrived (a repeat is answered with the first result)
          return r.text().then(function (t) {
            if (r.status >= 400 && r.status < 500) d.error = reason(t, r.status);
            keep.push(d);
          });
        }, function () { keep.push(d); });
      });
    });
    chain.then(function () {
      // Drafts added while sending are kept too.
      var now = load().filter(function (x) { return !drafts.some(function (d) { return d.id === x.id; }); });
      save(keep.concat(now));
      sending = false;
      show();
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-offline")) return;
    ev.preventDefault();
    entriesOf(form).then(function (entries) {
      var draft = {
        id: String(Date.now()) + Math.random().toString(16).slice(2),
        label: form.getAttribute("data-offline"),
        action: form.action,
        multipart: form.enctype === "multipart/form-data",
        entries: entries
      };
      return send(draft).then(function (r) {
        if (r.ok && r.redirected) { location.href = r.url; return; }
        return r.text().then(function (t) {
          var doc = new DOMParser().parseFromString(t, "text/html");
          document.body.replaceWith(doc.body);
          show();
        });
      }, function () {
        var d = load();
        d.push(draft);
        if (!save(d)) { alert((box() && box().getAttribute("data-full")) || "!"); return; }
        form.reset();
        // The next form is another order or listing: it gets its own key.
        var k = form.querySelector("input[name=idempotency_key]");
        if (k && window.crypto && crypto.getRandomValues) {
          var a = new Uint8Array(16);
          crypto.getRandomValues(a);
          k.value = Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
        }
        show();
      });
    });
  });

  window.addEventListener("online", flush);
  // Another tab sent or refused a draft: show what is left.
  window.addEventListener("storage", function (e) { if (e.key === KEY) show(); });
  setInterval(flush, 3000);
  show();
  flush();
})();

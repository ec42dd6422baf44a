// Dashboard behaviour htmx does not cover: copy buttons and a notice for errors htmx does not swap.
(function () {
  "use strict";

  function showNotice(message, isError) {
    var notice = document.getElementById("notice");
    if (!notice) return;
    notice.textContent = message;
    notice.classList.toggle("error", !!isError);
    notice.hidden = false;
    clearTimeout(showNotice.timer);
    showNotice.timer = setTimeout(function () { notice.hidden = true; }, 6000);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments have no Clipboard API: fall back to a selection copy.
    return new Promise(function (resolve, reject) {
      var scratch = document.createElement("textarea");
      scratch.value = text;
      scratch.setAttribute("readonly", "");
      scratch.style.position = "fixed";
      scratch.style.opacity = "0";
      document.body.appendChild(scratch);
      scratch.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(scratch);
      ok ? resolve() : reject(new Error("copy refused"));
    });
  }

  // Delegated, because copy buttons arrive in swapped fragments.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    copyText(source.value || source.textContent).then(function () {
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = "Copy"; button.classList.remove("copied"); }, 2000);
    }, function () {
      source.select && source.select();
      showNotice("Copy failed: the text is selected, press Ctrl+C.", true);
    });
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/html") === 0 && xhr.status >= 500
      ? "" : (xhr.responseText || "").trim();
    if (xhr.status >= 500 || !text || text.length > 300) {
      text = "Something went wrong (" + xhr.status + "); request " + (xhr.getResponseHeader("X-Request-Id") || "-") + ".";
    }
    showNotice(text, true);
  });

  document.addEventListener("htmx:sendError", function () {
    showNotice("The server could not be reached; check your connection and try again.", true);
  });
})();

// Kept out of the page so a strict Content-Security-Policy needs no inline script.
window.addEventListener("load", function () {
  var spec = document.currentScript ? document.currentScript.dataset.spec : null;
  spec = spec || document.querySelector("script[data-spec]").dataset.spec;
  window.ui = SwaggerUIBundle({ url: spec, dom_id: "#swagger-ui", deepLinking: true });
});

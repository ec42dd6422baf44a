// Kept out of the page so a strict Content-Security-Policy needs no inline script.
// document.currentScript is only set while this file runs, not inside the load listener: read it now.
(function () {
  var spec = document.currentScript.dataset.spec;
  window.addEventListener("load", function () {
    // validatorUrl: null, or Swagger UI fetches a badge from its public validator (deployments may be offline).
    window.ui = SwaggerUIBundle({ url: spec, dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
  });
})();

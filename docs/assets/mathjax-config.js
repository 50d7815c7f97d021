// MathJax 3, served from this site (assets/mathjax, copied from npm's mathjax package): no CDN.
// One configuration for every page: $...$ and \(...\) inline, $$...$$ and \[...\] displayed, as
// in the notebooks; pymdownx.arithmatex writes the README pages' math as \(...\) and \[...\].
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams",
  },
  options: { ignoreHtmlClass: "tex2jax_ignore", processHtmlClass: "tex2jax_process" },
};

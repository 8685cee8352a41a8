"use strict";
// Errors the page's script raised, for the browser tests' self-tests.
const pydxPageErrors = [];
window.addEventListener("error", (event) => pydxPageErrors.push(String(event.message)));

// What both pydx pages share. `pydxElement(tag, props, ...children)`
// builds an element: props are attributes, `class`, or `on<event>`
// listeners; children are elements or text, never markup.
function pydxElement(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") element.className = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// DOM helpers of the dashboard. Everything shown is set as text (textContent), never parsed as HTML, so a
// listener or cluster name cannot inject markup; and no element gets a style attribute (the CSP forbids
// inline styles), only classes.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An element: `el("td", { class: "num" }, "text", child)`. Attributes that are false, null or undefined
 * are left out; true sets an empty attribute. Strings become text nodes.
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node | string)} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  e.append(...children);
  return e;
}

/**
 * An SVG element with attributes.
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs);
  return e;
}

/**
 * @param {Element} e
 * @param {Record<string, unknown>} attrs
 */
function setAttrs(e, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    e.setAttribute(name, value === true ? "" : String(value));
  }
}

/**
 * Sets a node's text only when it changed, so an unchanged figure costs no layout.
 * @param {Node} node
 * @param {string} text
 */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Sets or clears one attribute only when it changed.
 * @param {Element} e
 * @param {string} name
 * @param {string | boolean} value false removes it, true sets it empty
 */
export function setAttr(e, name, value) {
  if (value === false) {
    if (e.hasAttribute(name)) e.removeAttribute(name);
    return;
  }
  const text = value === true ? "" : value;
  if (e.getAttribute(name) !== text) e.setAttribute(name, text);
}

/**
 * Keeps one child of `container` per item, matched by key and in the items' order: new items get a
 * `create`d node, every item's node is `update`d, nodes of items gone are removed. Nodes are kept across
 * updates, so an input being typed into or a focused button survives a refresh.
 * @template T
 * @param {Element} container
 * @param {readonly T[]} items
 * @param {(item: T) => string} keyOf
 * @param {(item: T) => HTMLElement} create
 * @param {(node: HTMLElement, item: T) => void} update
 */
export function syncChildren(container, items, keyOf, create, update) {
  /** @type {Map<string, HTMLElement>} */
  const old = new Map();
  for (const child of [...container.children]) old.set(child.dataset.key ?? "", child);
  /** @type {Element | null} */
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let node = old.get(key);
    old.delete(key);
    if (node === undefined) {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const wanted = previous === null ? container.firstElementChild : previous.nextElementSibling;
    if (node !== wanted) container.insertBefore(node, wanted);
    previous = node;
  }
  for (const node of old.values()) node.remove();
}

/**
 * Shows `text` in the toast for a few seconds; `error` styles it as a failure.
 * @param {string} text
 * @param {boolean} [error]
 */
export function toast(text, error = false) {
  const t = document.getElementById("toast");
  if (t === null) return;
  t.textContent = text;
  t.classList.toggle("bad", error);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), error ? 8000 : 3000);
}
/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

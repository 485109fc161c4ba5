// Modal dialogs: focus trapped inside, Esc and a click outside close them (unless locked while
// a job runs in them), focus returns to where it was. Usable by keyboard alone.

import { h } from "./dom";

export interface Modal {
  root: HTMLElement;
  body: HTMLElement;
  close: () => void;
  /** While locked (a restore running in it), Esc and a click outside do not close it. */
  lock: (locked: boolean) => void;
}

const FOCUSABLE =
  'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export function openModal(title: string, opts: { onClose?: () => void; danger?: boolean } = {}): Modal {
  const previous = document.activeElement as HTMLElement | null;
  const titleId = `modal-title-${Math.random().toString(36).slice(2)}`;
  const body = h("div", { class: "modal-body" });
  const dialog = h(
    "div",
    {
      class: `modal${opts.danger ? " danger" : ""}`,
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": titleId,
    },
    h("h2", { id: titleId }, title),
    body,
  );
  const root = h("div", { class: "modal-backdrop", "data-testid": "modal" }, dialog);
  let closed = false;
  let locked = false;
  const close = () => {
    if (closed) return;
    closed = true;
    document.removeEventListener("keydown", onKey, true);
    root.remove();
    previous?.focus?.();
    opts.onClose?.();
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape" || e.key === "Esc") {
      e.preventDefault();
      if (!locked) close();
    } else if (e.key === "Tab") {
      const items = Array.from(dialog.querySelectorAll<HTMLElement>(FOCUSABLE));
      if (items.length === 0) return;
      const first = items[0];
      const last = items[items.length - 1];
      const active = document.activeElement;
      if (e.shiftKey && (active === first || !dialog.contains(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (active === last || !dialog.contains(active))) {
        e.preventDefault();
        first.focus();
      }
    }
  };
  root.addEventListener("mousedown", (e) => {
    if (e.target === root && !locked) close();
  });
  document.addEventListener("keydown", onKey, true);
  document.body.appendChild(root);
  const lock = (on: boolean) => {
    locked = on;
    root.dataset.locked = on ? "true" : "false";
  };
  return { root, body, close, lock };
}

/** Focus the first focusable element of a modal (after its content is in place). */
export function focusFirst(m: Modal, selector = FOCUSABLE): void {
  m.root.querySelector<HTMLElement>(selector)?.focus();
}

/** A yes/no question; resolves true when confirmed. */
export function confirmModal(title: string, text: string, confirmLabel: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    let answer = false;
    const m = openModal(title, { danger, onClose: () => resolve(answer) });
    m.body.append(
      h("p", {}, text),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "secondary", onclick: () => m.close() }, "Cancel"),
        h(
          "button",
          {
            class: danger ? "danger" : "primary",
            onclick: () => {
              answer = true;
              m.close();
            },
          },
          confirmLabel,
        ),
      ),
    );
    focusFirst(m);
  });
}

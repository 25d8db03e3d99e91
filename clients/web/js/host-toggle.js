// A host's on/off switch in the top bar (Record, Go live): a button whose label follows
// the server's state, which calls the REST API with the seat's fresh token when clicked.
// The state itself changes only when the server says so, never on the click alone.
//
// hostToggle(session, { id, label, act, what }): `label()` is the text for the current
// state, `act(token)` does the request, `what` names it in an error toast.

import { toast } from './util.js';

export function hostToggle(session, { id, label, act, what }) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'btn';
  button.id = id;
  button.hidden = true;
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await act(await session.freshToken());
    } catch (err) {
      toast(`${what}: ${err.message}`, 8000);
    } finally {
      button.disabled = false;
    }
  });
  const show = () => {
    button.textContent = label();
    button.hidden = !session.me?.grants?.admin;
  };
  show();
  return { button, show };
}

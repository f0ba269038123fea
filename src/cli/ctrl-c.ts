/**
 * Ctrl-C for a command that must end cleanly (cutover, migrate): the first press asks the command
 * to stop at its next step (`pressed`), a second one quits at once with exit 130 (after `onSecond`
 * says what is left behind). Once the command's outcome is decided (`settle`), Ctrl-C changes
 * nothing: the command closes its connections and exits with that outcome.
 *
 * The listener stays until the process exits (the CLI exits with the command's code): without
 * one, SIGINT takes its default action at once, and killed a command whose cutover or migration
 * had completed, which a script then read as a failure.
 */
export interface CtrlC {
  readonly pressed: boolean;
  settle(): void;
}

export function watchCtrlC(onFirst: () => void = () => undefined, onSecond: () => void = () => undefined): CtrlC {
  let pressed = false;
  let settled = false;
  process.on('SIGINT', () => {
    if (settled) return;
    if (pressed) {
      onSecond();
      process.exit(130);
    }
    pressed = true;
    onFirst();
  });
  return {
    get pressed() {
      return pressed;
    },
    settle() {
      settled = true;
    },
  };
}

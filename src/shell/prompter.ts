// Questions to the operator: inquirer in the shell; in list mode nobody is there to answer.
import { OperatorError } from '../core/errors.js';
import type { Prompter } from '../core/plugin.js';
import { write } from './output.js';

export function interactivePrompter(): Prompter {
  return {
    interactive: true,
    async confirm(question, defaultAnswer) {
      const { confirm } = await import('@inquirer/prompts');
      return confirm({ message: question, default: defaultAnswer });
    },
    async select(question, choices) {
      const { select } = await import('@inquirer/prompts');
      return select({ message: question, choices, pageSize: 15 });
    },
    async input(question, defaultValue) {
      const { input } = await import('@inquirer/prompts');
      return input({ message: question, ...(defaultValue !== undefined ? { default: defaultValue } : {}) });
    },
  };
}

/** List mode: confirmations take their default (and say so); anything that needs an answer fails. */
export function listModePrompter(quiet: boolean): Prompter {
  const needsShell = (question: string) =>
    new OperatorError(
      `This step asks "${question}", which needs the interactive shell. Run the command from the prompt (node wrapper.js -c FILE) instead of in a -l list.`,
    );
  return {
    interactive: false,
    async confirm(question, defaultAnswer) {
      if (!quiet) write(`${question} ${defaultAnswer ? 'yes' : 'no'} (list mode: default answer)`);
      return defaultAnswer;
    },
    async select(question) {
      throw needsShell(question);
    },
    async input(question) {
      throw needsShell(question);
    },
  };
}

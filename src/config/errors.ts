/**
 * Errors of the config module.
 *
 * - ConfigError: a setting has a bad value (or is missing, or conflicts with another). `key` is the
 *   setting as the user spelled it in camelCase (`cacheSize`, `shares[1].cacheSize`); the message
 *   always starts with the key (or, from the command line, the flag) and quotes the bad value:
 *   `cacheSize: "20X" is not a size (e.g. 512M, 20G, 1T)`.
 * - UsageError: the command line itself is wrong (unknown flag, missing argument, bad flag value).
 *   The CLI prints the message and exits with status 2 (cli.md).
 */

export class ConfigError extends Error {
  /** The setting at fault, camelCase as in the config file. */
  readonly key: string;
  /** The message without its `key: ` prefix. */
  readonly problem: string;

  /**
   * @param key the setting at fault
   * @param problem what is wrong, e.g. `"20X" is not a size`
   * @param options.label what the message names instead of the key (e.g. the flag `--cache-size`)
   */
  constructor(key: string, problem: string, options?: { label?: string; cause?: unknown }) {
    super(
      `${options?.label ?? key}: ${problem}`,
      options?.cause !== undefined ? { cause: options.cause } : undefined,
    );
    this.name = 'ConfigError';
    this.key = key;
    this.problem = problem;
  }
}

export class UsageError extends Error {
  /** Process exit status for usage errors (cli.md). */
  readonly exitCode = 2;
  /** The setting at fault when the error is about one (camelCase key). */
  readonly key: string | undefined;

  constructor(message: string, options?: { key?: string; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'UsageError';
    this.key = options?.key;
  }
}

export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof ConfigError;
}

export function isUsageError(e: unknown): e is UsageError {
  return e instanceof UsageError;
}

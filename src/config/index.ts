/** Public API of the config module: units, share/daemon settings, command-line and fstab parsing. */
export { ConfigError, UsageError, isConfigError, isUsageError } from './errors.js';
export { parseDuration, parseSize, formatDuration, formatSize } from './units.js';
export {
  CHECKSUM_MODES,
  DEFAULTS,
  LOG_FORMATS,
  LOG_LEVELS,
  MAX_TIMER_MS,
  NFS_SQUASH_MODES,
  SHARE_INPUT_KEYS,
  SHARE_NAME_RE,
  WRITE_MODES,
  checkSharesDistinct,
  deriveShareName,
  parseBool,
  parseClientList,
  parseClientSpec,
  parseHostPort,
  parseInteger,
  parseOctalMode,
  parsePort,
  parseS3Url,
  resolveDaemonConfig,
  resolveShare,
} from './schema.js';
export type {
  ChecksumMode,
  ClientSpec,
  DaemonConfig,
  DaemonInput,
  HostPort,
  LogFormat,
  LogLevel,
  NfsSquash,
  ResolveOptions,
  S3Credentials,
  ShareConfig,
  ShareInput,
  ShareInputKey,
  WriteMode,
} from './schema.js';
export {
  GENERIC_MOUNT_OPTIONS,
  MOUNT_OPTIONS,
  parseFstabOptions,
  parseMountArgs,
  parseMountInput,
} from './args.js';
export type { MountArgs, OptionKind, OptionSpec } from './args.js';

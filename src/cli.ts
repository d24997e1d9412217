#!/usr/bin/env node
/** The `gatehouse` command. */
import { Command } from 'commander';
import { backupDataDir, formatDuration, formatSize, restoreDataDir } from './backup.js';
import { ConfigError, resolveConfig, resolveDatabaseUrl, resolveDataDir } from './config.js';
import { createAdminToken, createUserOffline, startGatehouse } from './server.js';

/** Where `token create` and `user create` find the store the servers use. */
function storeLocation(flags: { dataDir?: string; databaseUrl?: string }) {
  return { dataDir: resolveDataDir(flags.dataDir), databaseUrl: resolveDatabaseUrl(flags.databaseUrl) };
}

const program = new Command()
  .name('gatehouse')
  .description('Self-hosted IoT device platform: devices, gateways and peripherals over MQTT and REST');

program
  .command('serve')
  .description('run the platform (MQTT broker and REST API)')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .option(
    '--database-url <url>',
    'store everything in this PostgreSQL database instead of SQLite in the data directory (env GATEHOUSE_DATABASE_URL)',
  )
  .option(
    '--redis-url <url>',
    'join the other nodes sharing this Redis and the same --database-url (env GATEHOUSE_REDIS_URL)',
  )
  .option(
    '--redis-prefix <prefix>',
    'what Redis keys and channels of this deployment start with (env GATEHOUSE_REDIS_PREFIX, default gatehouse:)',
  )
  .option('--host <host>', 'address to listen on (env GATEHOUSE_HOST, default 127.0.0.1)')
  .option('--mqtt-port <port>', 'MQTT TCP port, 0 picks a free one (env GATEHOUSE_MQTT_PORT, default 1883)')
  .option(
    '--http-port <port>',
    'HTTP and MQTT-over-WebSocket port, also HTTPS and wss:// with --tls-cert (env GATEHOUSE_HTTP_PORT, default 8080)',
  )
  .option('--mqtts-port <port>', 'MQTT over TLS port (env GATEHOUSE_MQTTS_PORT, default 8883)')
  .option(
    '--tls-cert <file>',
    'PEM certificate enabling HTTPS and wss:// on the HTTP port and MQTT over TLS (env GATEHOUSE_TLS_CERT)',
  )
  .option('--tls-key <file>', 'PEM private key for --tls-cert (env GATEHOUSE_TLS_KEY)')
  .option(
    '--log-level <level>',
    'fatal, error, warn, info, debug, trace or silent (env GATEHOUSE_LOG_LEVEL, default info)',
  )
  .option(
    '--metrics-token <token>',
    'bearer token GET /metrics requires (env GATEHOUSE_METRICS_TOKEN; default: public)',
  )
  .option(
    '--workflow-http-private <allow|deny>',
    "whether workflows' HTTP nodes may call loopback and private addresses (env GATEHOUSE_WORKFLOW_HTTP_PRIVATE, default deny)",
  )
  .option(
    '--trusted-proxies <list>',
    'load balancers (addresses or CIDR ranges, comma-separated) whose MQTT connections start with a PROXY protocol header and whose X-Forwarded-For is believed (env GATEHOUSE_TRUSTED_PROXIES, default none)',
  )
  .action(async (flags: Record<string, string | undefined>) => {
    try {
      const config = resolveConfig(flags);
      const running = await startGatehouse(config);
      if (running.generatedAdminToken) {
        console.log(`admin API token (shown once, store it now): ${running.generatedAdminToken}`);
      }
      console.log(`mqtt listening on ${running.urls.mqtt}`);
      if (running.urls.mqtts) console.log(`mqtts listening on ${running.urls.mqtts}`);
      console.log(`http listening on ${running.urls.http}`);
      console.log(`ws listening on ${running.urls.ws}`);
      if (running.urls.https) console.log(`https listening on ${running.urls.https}`);
      if (running.urls.wss) console.log(`wss listening on ${running.urls.wss}`);
      let signalled = false;
      const shutdown = (signal: string) => {
        if (signalled) return;
        signalled = true;
        console.log(`${signal} received, shutting down`);
        running.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            console.error(`error during shutdown: ${(err as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: failed to start: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

program
  .command('token')
  .description('manage API tokens')
  .command('create')
  .description(
    'create an API token and print it once; works while a server runs on the same data directory, which accepts it at once',
  )
  .requiredOption(
    '--admin',
    'an operator (admin) token, which may do everything; application tokens are made over REST by their owners',
  )
  .option('--name <name>', 'what the token is for (default admin)')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .option('--database-url <url>', 'the PostgreSQL database the servers use, if they do (env GATEHOUSE_DATABASE_URL)')
  .action(async (flags: { name?: string; dataDir?: string; databaseUrl?: string }) => {
    try {
      const token = await createAdminToken(storeLocation(flags), flags.name ?? 'admin');
      console.log(`admin API token (shown once, store it now): ${token}`);
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: cannot create the token: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

program
  .command('user')
  .description('manage users')
  .command('create')
  .description(
    'create a user who signs in with email and password; works while a server runs on the same data directory',
  )
  .requiredOption('--email <email>', 'the address the user signs in with')
  .requiredOption('--password-stdin', 'read the password (at least 10 characters) from standard input')
  .option('--name <name>', 'the name shown for the user')
  .option('--admin', 'an administrator, who may do everything the admin token may')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .option('--database-url <url>', 'the PostgreSQL database the servers use, if they do (env GATEHOUSE_DATABASE_URL)')
  .action(async (flags: { email: string; name?: string; admin?: boolean; dataDir?: string; databaseUrl?: string }) => {
    try {
      const password = (await readStdin()).replace(/\r?\n$/, '');
      const user = await createUserOffline(storeLocation(flags), {
        email: flags.email,
        password,
        admin: flags.admin ?? false,
        ...(flags.name !== undefined ? { name: flags.name } : {}),
      });
      console.log(`user ${user.email} created with id ${user.id}${user.admin ? ' (administrator)' : ''}`);
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: cannot create the user: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

program
  .command('backup')
  .description(
    'write a consistent copy of the SQLite database, also while a server runs on the data directory and ingests (a PostgreSQL store is backed up with pg_dump)',
  )
  .requiredOption('--to <file>', 'the backup file to write')
  .option('--force', 'replace the file if it exists')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .action(async (flags: { to: string; force?: boolean; dataDir?: string }) => {
    try {
      const dataDir = resolveDataDir(flags.dataDir);
      const done = await backupDataDir({ dataDir, to: flags.to, force: flags.force === true });
      console.log(
        `backup of ${dataDir} written to ${done.file}: ${formatSize(done.bytes)} in ${formatDuration(done.ms)}`,
      );
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: cannot back up: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

program
  .command('restore')
  .description(
    'make a backup the database of a data directory; refused while a server runs on that directory (stop it first)',
  )
  .requiredOption('--from <file>', 'the backup file (written by gatehouse backup)')
  .option('--force', 'replace the database the data directory holds')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .action(async (flags: { from: string; force?: boolean; dataDir?: string }) => {
    try {
      const dataDir = resolveDataDir(flags.dataDir);
      const done = await restoreDataDir({ dataDir, from: flags.from, force: flags.force === true });
      console.log(`restored ${done.from} into ${done.file}: ${formatSize(done.bytes)} in ${formatDuration(done.ms)}`);
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: cannot restore: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

/** Standard input, whole, up to a bound (a password is short; a stray file piped in is not read whole). */
async function readStdin(limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ConfigError('standard input is too long for a password (set --password-stdin)');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

await program.parseAsync();

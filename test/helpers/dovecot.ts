/**
 * A real Dovecot IMAP server for tests: its own config, state and runtime
 * folders in a temp dir, one passwd-file user with a plaintext password,
 * Maildir storage, IMAP without TLS on a free loopback port, logging to a
 * file, stopped when the test is done. Never the system service.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { serverKilledAtExit } from './children.js';

const INSTALL_HINT = 'install the Debian package dovecot-imapd (apt-get install -y dovecot-imapd; bash test/setup.sh installs it)';

export interface DovecotServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Where the server logs, for a failing test's message. */
  logPath: string;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
}

function findBinary(): string {
  for (const candidate of ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot']) {
    if (existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v dovecot'], { encoding: 'utf8' });
  const found = (which.stdout ?? '').trim();
  if (which.status === 0 && found !== '') return found;
  // Thrown, not skipped: a missing server must show up as a failing test, not a green run that tested nothing.
  throw new Error(`dovecot not found: ${INSTALL_HINT}`);
}

async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts Dovecot; resolves once it accepts IMAP connections. */
export async function startDovecot(): Promise<DovecotServer> {
  const binary = findBinary();
  const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-dovecot-'));
  // Dovecot's login and mail processes run as other users than the master:
  // they must be able to walk into the temp dir.
  chmodSync(dir, 0o755);
  const me = userInfo();
  // Dovecot refuses mail access as UID 0 (a hard rule, not a setting), so a
  // test running as root gives the mailbox to `nobody`; otherwise the mail
  // processes run as the user running the test.
  const mailUid = me.uid === 0 ? 65534 : me.uid;
  const mailGid = me.uid === 0 ? 65534 : me.gid;
  const mailDir = join(dir, 'mail');
  mkdirSync(mailDir, { mode: 0o755 });
  if (me.uid === 0) chownSync(mailDir, mailUid, mailGid);
  for (const sub of ['run', 'state']) mkdirSync(join(dir, sub), { mode: 0o755 });

  const user = 'reports';
  const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
  const port = await freePort();
  const logPath = join(dir, 'dovecot.log');
  const users = join(dir, 'users');
  writeFileSync(users, `${user}:{PLAIN}${password}:${mailUid}:${mailGid}::${join(mailDir, user)}\n`, { mode: 0o644 });

  // Not root: Dovecot's internal and login users default to `dovecot` and
  // `dovenull`, which only root can switch to; run everything as ourselves.
  const ownUsers = me.uid === 0 ? '' : `default_internal_user = ${me.username}\ndefault_login_user = ${me.username}\n`;
  const config = `
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${logPath}
info_log_path = ${logPath}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# No 2 s wait after a failed login. (Anvil's per-IP penalty, which delays
# the logins after a failure, cannot be turned off: a test that logs in
# with a wrong password should be the last to log in.)
auth_failure_delay = 0
mail_location = maildir:${mailDir}/%u
mail_uid = ${mailUid}
mail_gid = ${mailGid}
first_valid_uid = ${mailUid}
last_valid_uid = ${mailUid}
first_valid_gid = ${mailGid}
last_valid_gid = ${mailGid}
${ownUsers}
passdb {
  driver = passwd-file
  args = ${users}
}
userdb {
  driver = passwd-file
  args = ${users}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
`;
  const configPath = join(dir, 'dovecot.conf');
  writeFileSync(configPath, config);

  const child: ChildProcess = serverKilledAtExit(spawn(binary, ['-F', '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let exited: number | null = null;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = code ?? -1;
      resolve();
    }),
  );

  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited !== null || Date.now() > deadline) {
      if (exited === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`dovecot did not start (exit ${String(exited)}):\n${output}\n${readLog(logPath)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    logPath,
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

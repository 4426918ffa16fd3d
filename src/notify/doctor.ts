/**
 * What `doctor` says about notifications, without sending anything: each
 * channel's secrets were read when the config loaded; here a mail channel's
 * server is asked (connect, TLS as configured, sign-in) and a URL channel's
 * address is checked for being sent in clear. A test message is what
 * `dmarc-rollout notify test <channel>` is for.
 */
import { smtpErrorText, smtpTransport } from './channels.js';
import type { NotifySettings } from './config.js';

/** The doctor's check shape (src/daemon/doctor.ts), named here by what it holds. */
export interface ChannelCheck {
  subject: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

export async function notificationChecks(settings: Pick<NotifySettings, 'channels' | 'timeoutMs' | 'summary'>, configFile: string): Promise<ChannelCheck[]> {
  if (settings.channels.length === 0) {
    return [{ subject: 'notifications', status: 'ok', detail: 'no channels configured: nothing is sent (see notifications.channels)' }];
  }
  const checks: ChannelCheck[] = [];
  for (const channel of settings.channels) {
    const subject = `notifications ${channel.name} (${channel.type})`;
    const test = `dmarc-rollout notify test ${channel.name} --config ${configFile}`;
    if (channel.type === 'smtp') {
      const transport = smtpTransport(channel, settings.timeoutMs);
      try {
        await transport.verify();
        checks.push({ subject, status: 'ok', detail: `${channel.host}:${channel.port} accepts us (${channel.security}${channel.auth ? `, signed in as ${channel.auth.user}` : ''}); mails go to ${channel.to.join(', ')}`, fix: test });
      } catch (error) {
        checks.push({
          subject,
          status: 'fail',
          detail: `${channel.host}:${channel.port}: ${smtpErrorText(error)}`,
          fix: 'check host, port, security (tls for 465, starttls for 587) and the password; then ' + test,
        });
      } finally {
        transport.close();
      }
      continue;
    }
    const url = new URL(channel.url);
    const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\./.test(url.hostname);
    if (url.protocol === 'http:' && !loopback) {
      checks.push({ subject, status: 'warn', detail: `posts to ${url.host} in clear text: the URL${channel.type === 'webhook' ? ', the payload and its signature' : ' (a secret) and the payload'} can be read on the way`, fix: 'use an https URL' });
    } else {
      checks.push({ subject, status: 'ok', detail: `posts to ${url.host} (the URL was read from its secret); send one with: ${test}` });
    }
  }
  if (settings.summary) checks.push({ subject: 'notifications summary', status: 'ok', detail: `on ${settings.summary.schedule} (UTC) to ${settings.summary.channels.join(', ')}` });
  return checks;
}

/**
 * Forward-only migrations, in code so they ship with the program. Each runs
 * once, in name order, inside kysely's Migrator (which records what ran). A
 * migration is never edited after it lands: a change is a new migration.
 * Column types are the portable subset SQLite and Postgres share.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { RowsDigest } from '../report-model/digest.js';
import type { ReportRecord } from '../report-model/model.js';
import { backfillRollups } from './rollups.js';

/** Which SQL dialect a migration writes for; only id columns differ. */
export type Dialect = 'sqlite' | 'postgres';

function idColumn(dialect: Dialect) {
  return dialect === 'postgres' ? ('serial' as const) : ('integer' as const);
}

function initial(dialect: Dialect): Migration {
  const id = idColumn(dialect);
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('domains')
        .addColumn('domain', 'text', (c) => c.primaryKey())
        .addColumn('plan', 'text', (c) => c.notNull())
        .addColumn('provider', 'text')
        .addColumn('stage_index', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('state_reason', 'text')
        .addColumn('stage_since', 'text')
        .addColumn('last_record', 'text')
        .addColumn('enrolled_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('stage_history')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('domain', 'text', (c) => c.notNull().references('domains.domain'))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('from_stage', 'text')
        .addColumn('to_stage', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('record', 'text')
        .execute();
      await db.schema.createIndex('stage_history_domain').on('stage_history').columns(['domain', 'id']).execute();

      await db.schema
        .createTable('audit_events')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('domain', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('details', 'text')
        .execute();
      await db.schema.createIndex('audit_events_domain').on('audit_events').columns(['domain', 'id']).execute();

      await db.schema
        .createTable('reports')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('org', 'text', (c) => c.notNull())
        .addColumn('report_id', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('begin', 'bigint', (c) => c.notNull())
        .addColumn('end', 'bigint', (c) => c.notNull())
        .addColumn('content_hash', 'text', (c) => c.notNull().unique())
        .addColumn('counted', 'integer', (c) => c.notNull())
        .addColumn('flag', 'text')
        .addColumn('duplicates', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('container', 'text')
        .addColumn('repaired', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('reports_identity')
        .on('reports')
        .columns(['org', 'report_id', 'domain', 'begin', 'end'])
        .execute();
      await db.schema.createIndex('reports_domain_range').on('reports').columns(['domain', 'begin']).execute();

      await db.schema
        .createTable('report_rows')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('report', 'integer', (c) => c.notNull().references('reports.id').onDelete('cascade'))
        .addColumn('source_ip', 'text', (c) => c.notNull())
        .addColumn('count', 'bigint', (c) => c.notNull())
        .addColumn('disposition', 'text')
        .addColumn('dkim', 'text')
        .addColumn('spf', 'text')
        .addColumn('header_from', 'text')
        .addColumn('envelope_from', 'text')
        .addColumn('envelope_to', 'text')
        .addColumn('reasons', 'text')
        .addColumn('auth_dkim', 'text')
        .addColumn('auth_spf', 'text')
        .execute();
      await db.schema.createIndex('report_rows_report').on('report_rows').column('report').execute();
      await db.schema.createIndex('report_rows_header_from').on('report_rows').column('header_from').execute();

      await db.schema
        .createTable('rejected_inputs')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('field', 'text')
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('content_hash', 'text', (c) => c.notNull().unique())
        .addColumn('kept_at', 'text')
        .execute();
    },
  };
}

function engine(dialect: Dialect): Migration {
  const id = idColumn(dialect);
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('domains').addColumn('window_start', 'text').execute();
      await db.schema.alterTable('domains').addColumn('approved_stage_index', 'integer').execute();

      await db.schema
        .createTable('intents')
        .addColumn('domain', 'text', (c) => c.primaryKey().references('domains.domain'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('from_index', 'integer', (c) => c.notNull())
        .addColumn('to_index', 'integer', (c) => c.notNull())
        .addColumn('record', 'text')
        .addColumn('previous_record', 'text')
        .addColumn('previous_ttl', 'integer')
        .addColumn('ttl', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('decision', 'text')
        .execute();

      await db.schema
        .createTable('source_rules')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('domain', 'text')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('verdict', 'text', (c) => c.notNull())
        .addColumn('added_by', 'text', (c) => c.notNull())
        .addColumn('added_at', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .execute();
      await db.schema.createIndex('source_rules_domain').on('source_rules').column('domain').execute();
    },
  };
}

/** Page sessions, so a restart of the daemon does not sign everyone out. */
function webSessions(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('web_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('web_sessions_expires_at').on('web_sessions').column('expires_at').execute();
    },
  };
}

/**
 * Notifications: domain tags (channels filter on them), the outbox of events
 * written in the audit event's own transaction, the per-channel messages the
 * sender delivers, and the conditions already announced (so an unchanged one
 * is not announced again every tick).
 */
function notifications(dialect: Dialect): Migration {
  const id = idColumn(dialect);
  const pk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('domains').addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]')).execute();

      await db.schema
        .createTable('notification_events')
        .addColumn('id', id, pk)
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('domain', 'text')
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('data', 'text')
        .addColumn('condition_key', 'text')
        .addColumn('audit_id', 'integer')
        .addColumn('dispatched_at', 'text')
        .execute();
      await db.schema.createIndex('notification_events_dispatched').on('notification_events').columns(['dispatched_at', 'id']).execute();

      await db.schema
        .createTable('notification_messages')
        .addColumn('id', id, pk)
        .addColumn('key', 'text', (c) => c.notNull().unique())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('event_count', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('last_attempt_at', 'text')
        .addColumn('last_error', 'text')
        .addColumn('delivered_at', 'text')
        .execute();
      await db.schema.createIndex('notification_messages_due').on('notification_messages').columns(['status', 'channel', 'id']).execute();

      await db.schema
        .createTable('notification_conditions')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('domain', 'text')
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('since', 'text', (c) => c.notNull())
        .addColumn('announced_at', 'text', (c) => c.notNull())
        .addColumn('reminders', 'integer', (c) => c.notNull())
        .addColumn('data', 'text')
        .execute();
    },
  };
}

/**
 * What enrolment found and what a domain's lifecycle needs: the record live
 * at enrolment (restored on request when it is unenrolled), the stage it
 * amounted to (the engine never goes below it without a person), and the
 * report address enrolment added to the record.
 */
function domainLifecycle(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('domains').addColumn('found_record', 'text').execute();
      await db.schema.alterTable('domains').addColumn('floor_index', 'integer').execute();
      await db.schema.alterTable('domains').addColumn('report_uri', 'text').execute();
    },
  };
}

/**
 * Intents get an id, so every update and delete names the one change it
 * means: a person's force that replaced a queued move is no longer patched or
 * deleted by a tick still working on the move it replaced.
 */
function hardening(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('intents').addColumn('id', 'text').execute();
      const rows = (await db.selectFrom('intents').select('domain').execute()) as Array<{ domain: string }>;
      for (const row of rows) await db.updateTable('intents').set({ id: randomUUID() }).where('domain', '=', row.domain).execute();
      await db.schema.createIndex('intents_id').on('intents').column('id').unique().execute();
    },
  };
}

/**
 * Report identity beyond the report_id: a digest of each report's rows, so a
 * report re-sent under a new report_id is found by one indexed read, and the
 * alignment modes (adkim, aspf) the receiver applied, which the engine needs
 * to tell a domain's own failing signature from another domain's. Reports
 * stored before are backfilled from their rows and metadata; their counted
 * flags are left as they were (past decisions stood on them).
 */
function reportIdentity(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('reports').addColumn('rows_digest', 'text').execute();
      await db.schema.alterTable('reports').addColumn('adkim', 'text').execute();
      await db.schema.alterTable('reports').addColumn('aspf', 'text').execute();
      await db.schema.createIndex('reports_rows_digest').on('reports').columns(['rows_digest', 'domain']).execute();
      let after = 0;
      for (;;) {
        const reports = (await db
          .selectFrom('reports')
          .select(['id', 'metadata'])
          .where('id', '>', after)
          .orderBy('id')
          .limit(500)
          .execute()) as Array<{ id: number; metadata: string }>;
        if (reports.length === 0) break;
        for (const report of reports) {
          after = Number(report.id);
          const rows = (await db.selectFrom('report_rows').selectAll().where('report', '=', report.id).execute()) as StoredRowJson[];
          const digest = new RowsDigest();
          for (const row of rows) digest.add(recordFromStoredRow(row));
          const policy = policyOf(report.metadata);
          await db
            .updateTable('reports')
            .set({ rows_digest: digest.digest(), adkim: policy.adkim, aspf: policy.aspf })
            .where('id', '=', report.id)
            .execute();
        }
      }
    },
  };
}

interface StoredRowJson {
  source_ip: string;
  count: number | bigint;
  disposition: string | null;
  dkim: string | null;
  spf: string | null;
  header_from: string | null;
  envelope_from: string | null;
  envelope_to: string | null;
  reasons: string | null;
  auth_dkim: string | null;
  auth_spf: string | null;
}

function recordFromStoredRow(row: StoredRowJson): ReportRecord {
  const list = <T>(json: string | null): T[] => (json ? (JSON.parse(json) as T[]) : []);
  return {
    source_ip: row.source_ip,
    count: Number(row.count),
    disposition: row.disposition,
    dkim: row.dkim,
    spf: row.spf,
    header_from: row.header_from,
    envelope_from: row.envelope_from,
    envelope_to: row.envelope_to,
    reasons: list(row.reasons),
    auth_dkim: list(row.auth_dkim),
    auth_spf: list(row.auth_spf),
  };
}

function policyOf(metadata: string): { adkim: string | null; aspf: string | null } {
  try {
    const policy = (JSON.parse(metadata) as { policy_published?: { adkim?: string | null; aspf?: string | null } }).policy_published;
    return { adkim: policy?.adkim ?? null, aspf: policy?.aspf ?? null };
  } catch {
    return { adkim: null, aspf: null };
  }
}

/** A person's acknowledgement that a regular reporter went quiet, so the engine stops waiting for it (reporters.ts). */
function engineWindows(dialect: Dialect): Migration {
  const id = idColumn(dialect);
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('reporter_acknowledgements')
        .addColumn('id', id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('domain', 'text', (c) => c.notNull().references('domains.domain'))
        .addColumn('reporter', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('reporter_acknowledgements_domain').on('reporter_acknowledgements').columns(['domain', 'reporter']).execute();
    },
  };
}

/**
 * Each domain's latest assessment, stored by the tick (and by a page that had
 * to measure a domain again), so the fleet page and the API read one row a
 * domain, filtered, sorted and paged in SQL, instead of judging every domain
 * per request. last_report_id is the newest report of the domain's own when
 * it was measured: a newer one marks the figures stale. The domains indexes
 * serve the fleet filters.
 */
function domainAssessments(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('domain_assessments')
        .addColumn('domain', 'text', (c) => c.primaryKey().references('domains.domain').onDelete('cascade'))
        .addColumn('assessed_at', 'text', (c) => c.notNull())
        .addColumn('plan', 'text', (c) => c.notNull())
        .addColumn('stage_index', 'integer', (c) => c.notNull())
        .addColumn('last_report_id', 'bigint', (c) => c.notNull())
        .addColumn('authorised_fail_rate', 'double precision')
        .addColumn('authorised_messages', 'bigint', (c) => c.notNull())
        .addColumn('spoofing_messages', 'bigint', (c) => c.notNull())
        .addColumn('blocking_sources', 'integer', (c) => c.notNull())
        .addColumn('decision_action', 'text')
        .addColumn('decision_to', 'text')
        .addColumn('decision_summary', 'text')
        .execute();
      await db.schema.createIndex('domain_assessments_decision').on('domain_assessments').columns(['decision_action', 'domain']).execute();
      await db.schema.createIndex('domains_state').on('domains').columns(['state', 'domain']).execute();
      await db.schema.createIndex('domains_plan_stage').on('domains').columns(['plan', 'stage_index']).execute();
    },
  };
}

/**
 * Stage history outlives enrolment: an unenrolled domain's stage changes are
 * the record of what this program did to its DNS, so the foreign key that
 * forced deleting them goes. SQLite cannot drop a constraint, so the table is
 * rebuilt there (ids kept); Postgres drops the constraint by name.
 */
function stageHistoryKept(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      if (dialect === 'postgres') {
        await sql`alter table stage_history drop constraint if exists stage_history_domain_fkey`.execute(db);
        return;
      }
      await db.schema
        .createTable('stage_history_kept')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('from_stage', 'text')
        .addColumn('to_stage', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('record', 'text')
        .execute();
      await sql`insert into stage_history_kept (id, domain, at, from_stage, to_stage, action, actor, reason, record)
        select id, domain, at, from_stage, to_stage, action, actor, reason, record from stage_history`.execute(db);
      await db.schema.dropTable('stage_history').execute();
      await db.schema.alterTable('stage_history_kept').renameTo('stage_history').execute();
      await db.schema.createIndex('stage_history_domain').on('stage_history').columns(['domain', 'id']).execute();
    },
  };
}

/**
 * Leases: who works on a domain (or polls a source) now, until when. A tick
 * takes a domain's lease before judging it and gives it back after, so two
 * instances (daemons on one Postgres, or the CLI's tick beside the daemon's)
 * never judge or change the same domain at once; a lease whose holder died
 * runs out and is taken over.
 */
function leases(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Several daemons on one store: each registers itself in `instances` and
 * renews its heartbeat (and with it its leases) while it lives, so status and
 * /healthz show who runs and a dead one's work is taken over once its leases
 * run out. Outbox messages get a claim (who delivers it, until when) so one
 * instance sends each message; a claim whose instance died runs out too.
 * Report sources take their lease in the `leases` table (source:<name>).
 */
function instances(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('heartbeat_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.alterTable('notification_messages').addColumn('claimed_by', 'text').execute();
      await db.schema.alterTable('notification_messages').addColumn('claimed_until', 'text').execute();
    },
  };
}

/**
 * Daily rollups (src/store/rollups.ts): the engine reads a domain's figures
 * from these instead of raw rows, so raw rows can be pruned by retention
 * (reports.rows_pruned_at says which were). rollup_marks counts changes per
 * name, and the stored assessment keeps what a tick needs to reuse it while
 * nothing changed. Existing counted reports are rolled up from their rows
 * here, a page of reports at a time.
 */
function dailyRollups(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('daily_rollups')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('reporter', 'text', (c) => c.notNull())
        .addColumn('begin', 'bigint', (c) => c.notNull())
        .addColumn('end', 'bigint', (c) => c.notNull())
        .addColumn('adkim', 'text', (c) => c.notNull())
        .addColumn('aspf', 'text', (c) => c.notNull())
        .addColumn('source_ip', 'text', (c) => c.notNull())
        .addColumn('header_from', 'text')
        .addColumn('dkim', 'text')
        .addColumn('spf', 'text')
        .addColumn('reasons', 'text', (c) => c.notNull())
        .addColumn('auth_dkim', 'text', (c) => c.notNull())
        .addColumn('auth_spf', 'text', (c) => c.notNull())
        .addColumn('messages', 'bigint', (c) => c.notNull())
        .addColumn('records', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('daily_rollups_domain_day').on('daily_rollups').columns(['domain', 'day']).execute();
      await db.schema.createIndex('daily_rollups_header_from_day').on('daily_rollups').columns(['header_from', 'day']).execute();
      await db.schema
        .createTable('rollup_marks')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('changes', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.alterTable('reports').addColumn('rows_pruned_at', 'text').execute();
      await db.schema.createIndex('reports_rows_kept').on('reports').columns(['rows_pruned_at', 'end']).execute();
      await db.schema.alterTable('domain_assessments').addColumn('rollup_changes', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('domain_assessments').addColumn('inputs', 'text').execute();
      await db.schema.alterTable('domain_assessments').addColumn('recheck_at', 'text').execute();
      await db.schema.alterTable('domain_assessments').addColumn('decision', 'text').execute();
      await backfillRollups(db);
    },
  };
}

/** Counters of the limits every instance on the store shares (src/store/counters.ts): one row per limit, subject and slice of its window. */
function sharedLimits(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('limit_counters')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .addColumn('count', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('limit_counters_pk', ['name', 'subject', 'window_start'])
        .execute();
      await db.schema.createIndex('limit_counters_expires').on('limit_counters').column('expires_at').execute();
    },
  };
}

/**
 * A report being stored on SQLite is written as a staged report (its rows in
 * short transactions, so the daemon's one connection is not held for the
 * minutes a big report takes) and counted at the end in one short
 * transaction. `staged_at` is when such a report last made progress (epoch
 * ms), null once it is stored: a staged report that stopped making progress
 * (its process died) is deleted by the next ingest, never counted.
 */
function stagedReports(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('reports').addColumn('staged_at', 'bigint').execute();
      await db.schema.createIndex('reports_staged').on('reports').column('staged_at').execute();
    },
  };
}

/**
 * What the summary reads by period, by index: the stage changes and the
 * notification events since a time. Without them each summary (the weekly
 * mail, the notifications page, GET /api/v1/summary) scanned both tables,
 * which grow with the fleet's history (a dozen stage changes a domain).
 */
function periodIndexes(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('stage_history_at').on('stage_history').columns(['at', 'id']).execute();
      await db.schema.createIndex('notification_events_at').on('notification_events').columns(['at', 'type']).execute();
    },
  };
}

/**
 * The fleet listing's sorts served by indexes (src/store/assessments.ts
 * fleetRows): a page sorted by a stored figure, a stage or days in stage was
 * one statement sorting the whole fleet (164 ms holding the event loop at
 * 100,000 domains on SQLite). Ties go by domain name ascending in either
 * direction, so each sort that can go down has a second index with its
 * leading columns descending and the name ascending. NULLs are read as a
 * segment of their own (`... is null order by domain`), so no index needs a
 * NULLs-last order (SQLite cannot declare one). (plan, stage_index, domain)
 * serves whatever the old (plan, stage_index) index did.
 */
function fleetSort(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('domains_state_desc').on('domains').columns(['state desc', 'domain']).execute();
      await db.schema.dropIndex('domains_plan_stage').execute();
      await db.schema.createIndex('domains_plan_stage_domain').on('domains').columns(['plan', 'stage_index', 'domain']).execute();
      await db.schema.createIndex('domains_plan_stage_desc').on('domains').columns(['plan desc', 'stage_index desc', 'domain']).execute();
      await db.schema.createIndex('domains_stage_since').on('domains').columns(['stage_since', 'domain']).execute();
      await db.schema.createIndex('domains_stage_since_desc').on('domains').columns(['stage_since desc', 'domain']).execute();
      for (const figure of ['authorised_fail_rate', 'authorised_messages', 'spoofing_messages', 'blocking_sources']) {
        await db.schema.createIndex(`domain_assessments_${figure}`).on('domain_assessments').columns([figure, 'domain']).execute();
        await db.schema.createIndex(`domain_assessments_${figure}_desc`).on('domain_assessments').columns([`${figure} desc`, 'domain']).execute();
      }
    },
  };
}

/**
 * The rollup entries of a staged report too diverse to hold in memory
 * (src/reports/store.ts): summed here per report while it is read, merged
 * into daily_rollups in key order when it counts, then deleted.
 */
function stagedRollups(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('staged_rollups')
        .addColumn('report', 'bigint', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('reporter', 'text', (c) => c.notNull())
        .addColumn('begin', 'bigint', (c) => c.notNull())
        .addColumn('end', 'bigint', (c) => c.notNull())
        .addColumn('adkim', 'text', (c) => c.notNull())
        .addColumn('aspf', 'text', (c) => c.notNull())
        .addColumn('source_ip', 'text', (c) => c.notNull())
        .addColumn('header_from', 'text')
        .addColumn('dkim', 'text')
        .addColumn('spf', 'text')
        .addColumn('reasons', 'text', (c) => c.notNull())
        .addColumn('auth_dkim', 'text', (c) => c.notNull())
        .addColumn('auth_spf', 'text', (c) => c.notNull())
        .addColumn('messages', 'bigint', (c) => c.notNull())
        .addColumn('records', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('staged_rollups_pk', ['report', 'key'])
        .execute();
    },
  };
}

/** Every migration by name; names sort in the order they must run. */
export function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0003_engine': engine(dialect),
    '0004_web_sessions': webSessions(),
    '0005_report_identity': reportIdentity(),
    '0006_domain_lifecycle': domainLifecycle(),
    '0007_hardening': hardening(),
    '0008_notifications': notifications(dialect),
    '0009_engine_windows': engineWindows(dialect),
    '0010_domain_assessments': domainAssessments(),
    '0011_leases': leases(),
    '0011_stage_history_kept': stageHistoryKept(dialect),
    '0012_daily_rollups': dailyRollups(),
    '0013_instances': instances(),
    '0014_shared_limits': sharedLimits(),
    '0015_fleet_sort': fleetSort(),
    '0016_staged_reports': stagedReports(),
    '0016_staged_rollups': stagedRollups(),
    '0017_period_indexes': periodIndexes(),
  };
}

/** Hands kysely's Migrator the in-code migrations. */
export class CodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.dialect);
  }
}

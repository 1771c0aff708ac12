using System.Globalization;
using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>The versioned schema (PRAGMA user_version), its migrations and the connection settings of the engine.</summary>
internal static class SqliteSchema
{
    /// <summary>
    /// Version 4: the event log with per-group floors, idempotency keys in claim order (version 1 kept a row per event
    /// and per delivery; version 2 kept the marks in a WITHOUT ROWID table; version 3 kept the keys in key order with an
    /// index by expiry).
    /// </summary>
    public const int Version = 4;

    // Times are UTC ticks (INTEGER). Group ids are never reused (AUTOINCREMENT), so a group created later is never
    // named in the routes of an older event.
    //
    // events: the log. Each event once, whatever its fan-out, appended in id order and never updated; `routes` lists the
    // ids of the groups it went to as ",3,17," (a group finds its events with instr(routes, ',3,')); `retain_until` is
    // when it expires undelivered, `retain_overrides` ("17=ticks;...") only for routed groups whose retention differs.
    // Rows are deleted by id range once every group they went to has its floor past them.
    //
    // groups.floor: every event of the group at or below it is finished there (acked, dead-lettered, or moved to a
    // delivery row); it may lag the true floor (it is written when it enters another block), never lead it.
    // group_marks: per group and block of 4,096 ids from the floor's block up, two bitmaps: `done` (the event left the
    // log's common path: acked, dead-lettered or given a delivery row) and `delivered` (leased at least once, so a
    // restart counts the attempt). An event of a group above its floor without a done bit is pending or leased there.
    // So a batch of acks is made durable by a write per block it touched, not by a write per event. A rowid table on
    // purpose: a block row (~1,040 bytes) is over what an index b-tree page keeps inline (~1,000 bytes of a 4 KiB page),
    // so WITHOUT ROWID (version 2) spilled it to an overflow page, and every REPLACE freed and reallocated that page (the
    // freelist and page 1 with it): 3 pages in the log per block write. A table b-tree keeps it inline and an upsert of
    // the same size overwrites it in place: 1 page.
    //
    // deliveries: a row only for a delivery that left the common path: retried (nacked, released, lease expired),
    // skipped by a lease (another worker's label, or waiting behind its ordering key), leased for long, redriven.
    // Self-contained (the event's fields copied), so the log can be deleted behind the floors. state: 0 = ready,
    // 1 = leased, 2 = delayed (due at sched); a lease first promotes the group's due delayed rows to ready.
    // dead_letters: self-contained too.
    private const string CreateV4 = """
        CREATE TABLE meta(
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta(key, value) VALUES ('next_event_id', 1), ('next_lease_no', 1);

        CREATE TABLE groups(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            patterns TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            floor INTEGER NOT NULL);

        """ + IdempotencyTable + LogTables + DeliveryTablesV2 + "PRAGMA user_version = 4;";

    // idempotency: a row per claimed key, its row id the event it was claimed for, so rows are appended in claim order
    // (the cheap end of a table b-tree) and expire in that order, with no index by expiry; the key has an index of its
    // own. A key is stored as 16 bytes when it is 32 lowercase hex digits (SqliteIdempotencyKey), else as its text (a
    // BLOB column stores values as given, so neither form is converted). Version 3 kept two index b-trees, the keys and
    // their expiry: the claim cost about 2.5 µs of broker CPU per event (9.3-9.9 µs with it, 6.6-7.6 µs skipping it),
    // this layout about a third less.
    private const string IdempotencyTable = """
        CREATE TABLE idempotency(
            event_id INTEGER PRIMARY KEY,
            key BLOB NOT NULL,
            groups TEXT NOT NULL,
            expires_at INTEGER NOT NULL);
        CREATE UNIQUE INDEX idempotency_key ON idempotency(key);

        """;

    private const string LogTables = """
        CREATE TABLE events(
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL,
            payload BLOB NOT NULL,
            ordering_key TEXT,
            source TEXT,
            raised_at INTEGER NOT NULL,
            routes TEXT NOT NULL,
            retain_until INTEGER NOT NULL,
            retain_overrides TEXT);

        """ + MarksTable + "\n";

    private const string MarksTable = """
        CREATE TABLE group_marks(
            group_id INTEGER NOT NULL,
            block INTEGER NOT NULL,
            done BLOB NOT NULL,
            delivered BLOB NOT NULL,
            PRIMARY KEY(group_id, block));
        """;

    private const string DeliveryTablesV2 = """
        CREATE TABLE deliveries(
            group_id INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            state INTEGER NOT NULL,
            sched INTEGER NOT NULL,
            lease_no INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            last_error TEXT,
            retain_until INTEGER NOT NULL,
            ordering_key TEXT,
            label TEXT NOT NULL,
            payload BLOB NOT NULL,
            source TEXT,
            raised_at INTEGER NOT NULL,
            PRIMARY KEY(group_id, event_id));
        CREATE INDEX deliveries_sched ON deliveries(group_id, state, sched, event_id);
        CREATE INDEX deliveries_retain ON deliveries(retain_until);
        CREATE INDEX deliveries_okey ON deliveries(group_id, ordering_key, event_id) WHERE ordering_key IS NOT NULL;

        CREATE TABLE dead_letters(
            group_id INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            reason TEXT NOT NULL,
            dead_at INTEGER NOT NULL,
            label TEXT NOT NULL,
            payload BLOB NOT NULL,
            ordering_key TEXT,
            source TEXT,
            raised_at INTEGER NOT NULL,
            PRIMARY KEY(group_id, event_id));

        """;

    // Version 1 kept every pending delivery as a row joined to a shared events row. Each becomes a version 2 delivery
    // row (its event's fields copied in), dead letters likewise; the log starts empty with every floor at the newest
    // id, so nothing is delivered twice or lost. Leased rows stay leased here; opening returns them to pending.
    private const string MigrateV1 = """
        ALTER TABLE deliveries RENAME TO deliveries_v1;
        ALTER TABLE dead_letters RENAME TO dead_letters_v1;
        ALTER TABLE events RENAME TO events_v1;
        DROP INDEX deliveries_sched;
        DROP INDEX deliveries_retain;
        DROP INDEX deliveries_okey;
        """ + LogTables + DeliveryTablesV2 + """
        INSERT INTO deliveries(group_id, event_id, state, sched, lease_no, attempt, last_error, retain_until, ordering_key, label, payload, source, raised_at)
            SELECT d.group_id, d.event_id, d.state, d.sched, d.lease_no, d.attempt, d.last_error, d.retain_until, e.ordering_key, e.label, e.payload, e.source, e.raised_at
            FROM deliveries_v1 AS d JOIN events_v1 AS e ON e.id = d.event_id;
        INSERT INTO dead_letters(group_id, event_id, attempts, last_error, reason, dead_at, label, payload, ordering_key, source, raised_at)
            SELECT dl.group_id, dl.event_id, dl.attempts, dl.last_error, dl.reason, dl.dead_at, e.label, e.payload, e.ordering_key, e.source, e.raised_at
            FROM dead_letters_v1 AS dl JOIN events_v1 AS e ON e.id = dl.event_id;
        DROP TABLE deliveries_v1;
        DROP TABLE dead_letters_v1;
        DROP TABLE events_v1;
        ALTER TABLE groups ADD COLUMN floor INTEGER NOT NULL DEFAULT 0;
        UPDATE groups SET floor = (SELECT value - 1 FROM meta WHERE key = 'next_event_id');
        PRAGMA user_version = 3;
        """;

    // Version 3 kept the keys WITHOUT ROWID in key order, with an index by expiry: the same entries, moved to the claim
    // ordered table, SDK-form keys converted to their bytes.
    private const string MigrateV3 = """
        ALTER TABLE idempotency RENAME TO idempotency_v3;
        DROP INDEX idempotency_expiry;

        """ + IdempotencyTable + """
        INSERT INTO idempotency(event_id, key, groups, expires_at)
            SELECT event_id, CASE WHEN length(key) = 32 AND key NOT GLOB '*[^0-9a-f]*' THEN unhex(key) ELSE key END, groups, expires_at
            FROM idempotency_v3 ORDER BY event_id;
        DROP TABLE idempotency_v3;
        PRAGMA user_version = 4;
        """;

    // Version 2 kept the marks WITHOUT ROWID (see the layout above): the same rows, moved to a rowid table.
    private const string MigrateV2 = "ALTER TABLE group_marks RENAME TO group_marks_v2;\n" + MarksTable + """
        INSERT INTO group_marks(group_id, block, done, delivered) SELECT group_id, block, done, delivered FROM group_marks_v2;
        DROP TABLE group_marks_v2;
        PRAGMA user_version = 3;
        """;

    /// <summary>
    /// Opens the read-write connection, switches to WAL with the durability's synchronous mode, and creates or migrates
    /// the schema. Returns the schema version the file had (0 for a new file).
    /// </summary>
    public static SqliteConnection OpenWriter(SqliteStoreOptions options, out int foundVersion)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(options.DatabasePath)!);
        var connection = Open(options, SqliteOpenMode.ReadWriteCreate);
        try
        {
            var mode = Convert.ToString(FirstScalar(connection, "PRAGMA journal_mode = WAL;", options.DatabasePath), CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"SQLite database '{options.DatabasePath}' could not switch to WAL (journal_mode is '{mode}').");
            }

            var synchronous = options.Durability == Durability.Fsync ? "FULL" : "NORMAL";
            // Checkpoints run on their own connection (SqliteCheckpointer), never inside the writer's commits; a log
            // that grew under a burst is cut back to 64 MiB once a checkpoint has copied it all.
            Execute(
                connection,
                $"PRAGMA synchronous = {synchronous}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{options.CacheSizeKiB.ToString(CultureInfo.InvariantCulture)}; "
                + "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;");
            foundVersion = Migrate(connection, options.DatabasePath);
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public static SqliteConnection OpenReader(SqliteStoreOptions options)
    {
        var connection = Open(options, SqliteOpenMode.ReadWrite);
        try
        {
            Execute(connection, "PRAGMA query_only = 1; PRAGMA temp_store = MEMORY;");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The connection checkpoints run on (they write the database file, so it cannot be query-only).</summary>
    public static SqliteConnection OpenCheckpointer(SqliteStoreOptions options)
    {
        var connection = Open(options, SqliteOpenMode.ReadWrite);
        try
        {
            var synchronous = options.Durability == Durability.Fsync ? "FULL" : "NORMAL";
            Execute(connection, $"PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = 0;");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static SqliteConnection Open(SqliteStoreOptions options, SqliteOpenMode mode)
    {
        // No pooling: the store owns its connections and closes the file when disposed.
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = DataSource(options.DatabasePath),
            Mode = mode,
            Cache = SqliteCacheMode.Private,
            Pooling = false,
            DefaultTimeout = 30,
        };
        var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        return connection;
    }

    /// <summary>
    /// The database as the connections open it. On Unix through SQLite's <c>unix-excl</c> VFS: the first connection
    /// takes an exclusive lock on the file for the process, held until the last one closes, and the write-ahead log's
    /// index lives in the process's memory instead of a shared <c>-shm</c> file. So the store's connections (writer,
    /// reader, checkpointer) share the database as before, each transaction skips the file locks it would take for
    /// other processes, and another process (a second broker given the same data folder) cannot open it at all.
    /// </summary>
    internal static string DataSource(string databasePath)
    {
        if (OperatingSystem.IsWindows())
        {
            return databasePath;
        }

        // A URI filename: the path's reserved characters escaped, its separators kept.
        var path = Uri.EscapeDataString(Path.GetFullPath(databasePath)).Replace("%2F", "/", StringComparison.Ordinal);
        return $"file:{path}?vfs=unix-excl";
    }

    /// <summary>
    /// The writer's first statement, the first to touch the file: when another process holds the database, it says so
    /// after a second instead of waiting out the usual busy timeout.
    /// </summary>
    private static object? FirstScalar(SqliteConnection connection, string sql, string path)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 1;
        try
        {
            return command.ExecuteScalar();
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 5 or 6)
        {
            throw new StorageInUseException(
                $"the SQLite database {path} is in use by another process (another broker with the same HookBroker:DataPath?): give each broker a data folder of its own, or stop the other one",
                ex);
        }
    }

    private static int Migrate(SqliteConnection connection, string path)
    {
        var version = Convert.ToInt32(Scalar(connection, "PRAGMA user_version;"), CultureInfo.InvariantCulture);
        if (version == Version)
        {
            return version;
        }

        if (version > Version)
        {
            throw new InvalidOperationException(
                $"SQLite database '{path}' has schema version {version}; this broker knows up to {Version}. Use a newer broker.");
        }

        using var transaction = connection.BeginTransaction();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = version switch
            {
                0 => CreateV4,
                1 => MigrateV1 + MigrateV3,
                2 => MigrateV2 + MigrateV3,
                _ => MigrateV3,
            };
            command.ExecuteNonQuery();
        }

        transaction.Commit();
        return version;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}

using System.Globalization;
using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>The versioned schema (PRAGMA user_version) and the connection settings of the engine.</summary>
internal static class SqliteSchema
{
    public const int Version = 1;

    // Times are UTC ticks (INTEGER). Group ids are small integers kept in memory by the writer.
    // deliveries.state: 0 = ready (due), 1 = leased, 2 = delayed (due at sched: a retry, a released or expired lease,
    // a redrive). A lease first promotes the group's delayed rows that are due to ready.
    // deliveries.sched: ready 0 (so the ready set reads in event id order from one index range), leased the lease
    // end, delayed the due time. One index on (group_id, state, sched, event_id) thus serves leasing, promoting due
    // retries, the next due time and lease expiry, each as a range scan.
    // events.refs: deliveries plus dead letters pointing at the event; the row goes when it reaches zero.
    private const string CreateV1 = """
        CREATE TABLE meta(
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta(key, value) VALUES ('next_event_id', 1), ('next_lease_no', 1);

        CREATE TABLE groups(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            patterns TEXT NOT NULL,
            created_at INTEGER NOT NULL);

        CREATE TABLE events(
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL,
            payload BLOB NOT NULL,
            ordering_key TEXT,
            source TEXT,
            raised_at INTEGER NOT NULL,
            refs INTEGER NOT NULL);

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
            PRIMARY KEY(group_id, event_id)) WITHOUT ROWID;
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
            PRIMARY KEY(group_id, event_id)) WITHOUT ROWID;

        CREATE TABLE idempotency(
            key TEXT PRIMARY KEY,
            event_id INTEGER NOT NULL,
            groups TEXT NOT NULL,
            expires_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX idempotency_expiry ON idempotency(expires_at);

        PRAGMA user_version = 1;
        """;

    public static SqliteConnection OpenWriter(SqliteStoreOptions options)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(options.DatabasePath)!);
        var connection = Open(options, SqliteOpenMode.ReadWriteCreate);
        try
        {
            var mode = Convert.ToString(Scalar(connection, "PRAGMA journal_mode = WAL;"), CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"SQLite database '{options.DatabasePath}' could not switch to WAL (journal_mode is '{mode}').");
            }

            var synchronous = options.Durability == Durability.Fsync ? "FULL" : "NORMAL";
            Execute(connection, $"PRAGMA synchronous = {synchronous}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{options.CacheSizeKiB.ToString(CultureInfo.InvariantCulture)};");
            Migrate(connection, options.DatabasePath);
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

    private static SqliteConnection Open(SqliteStoreOptions options, SqliteOpenMode mode)
    {
        // No pooling: the store owns its two connections and closes the file when disposed.
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = options.DatabasePath,
            Mode = mode,
            Cache = SqliteCacheMode.Private,
            Pooling = false,
            DefaultTimeout = 30,
        };
        var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        return connection;
    }

    private static void Migrate(SqliteConnection connection, string path)
    {
        var version = Convert.ToInt32(Scalar(connection, "PRAGMA user_version;"), CultureInfo.InvariantCulture);
        if (version == Version)
        {
            return;
        }

        if (version > Version)
        {
            throw new InvalidOperationException($"SQLite database '{path}' has schema version {version}; this broker knows up to {Version}. Use a newer broker.");
        }

        using var transaction = connection.BeginTransaction();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = CreateV1;
            command.ExecuteNonQuery();
        }

        transaction.Commit();
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

using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A prepared statement driven through SQLitePCL directly, for the per-event statements (appending to the log,
/// reading it): values bind by position and type and columns read as spans, so no parameter lookup by name, no boxing
/// and no data reader per call. Runs on the writer's connection inside its transactions.
/// </summary>
internal sealed class SqliteRawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public SqliteRawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The SQLite connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
    }

    /// <summary>Binds a value to the 1-based parameter <paramref name="index"/>.</summary>
    public void Bind(int index, long value) => Check(raw.sqlite3_bind_int64(_statement, index, value));

    public void Bind(int index, string? value) =>
        Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));

    /// <summary>Binds UTF-8 text.</summary>
    public void BindText(int index, ReadOnlySpan<byte> utf8) => Check(raw.sqlite3_bind_text(_statement, index, utf8));

    public void Bind(int index, ReadOnlySpan<byte> blob) =>
        Check(blob.IsEmpty ? raw.sqlite3_bind_zeroblob(_statement, index, 0) : raw.sqlite3_bind_blob(_statement, index, blob));

    /// <summary>Runs a statement that returns no rows; returns the rows it changed.</summary>
    public int Execute()
    {
        try
        {
            var rc = raw.sqlite3_step(_statement);
            if (rc != raw.SQLITE_DONE)
            {
                Check(rc);
            }

            return raw.sqlite3_changes(_db);
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    /// <summary>Steps to the next row: true on a row, false at the end (then the statement is reset).</summary>
    public bool Read()
    {
        var rc = raw.sqlite3_step(_statement);
        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            Check(rc);
        }

        return false;
    }

    /// <summary>Ends a read before its last row.</summary>
    public void Reset() => raw.sqlite3_reset(_statement);

    public long Int64(int column) => raw.sqlite3_column_int64(_statement, column);

    public bool IsNull(int column) => raw.sqlite3_column_type(_statement, column) == raw.SQLITE_NULL;

    public string? TextOrNull(int column) => IsNull(column) ? null : Text(column);

    public string Text(int column) => Encoding.UTF8.GetString(Utf8(column));

    /// <summary>The text of a column as UTF-8 bytes, valid until the next step or reset.</summary>
    public ReadOnlySpan<byte> Utf8(int column) => raw.sqlite3_column_blob(_statement, column);

    public byte[] Blob(int column) => raw.sqlite3_column_blob(_statement, column).ToArray();

    public void Dispose() => _statement.Dispose();

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}

using System.Buffers;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A prepared statement driven through the SQLite C API directly (<see cref="SqliteNative"/>), for the per-event
/// statements (appending to the log, claiming keys, reading the log): values bind by position and type and columns read
/// as spans, so no parameter lookup by name, no boxing, no data reader and no array per call. Runs on the writer's
/// connection inside its transactions, on one thread at a time.
/// </summary>
internal sealed unsafe class SqliteRawStatement : IDisposable
{
    /// <summary>Text up to this many UTF-8 bytes is encoded on the stack; longer text in a pooled array.</summary>
    private const int StackTextBytes = 512;

    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly nint _connectionHandle;
    private readonly nint _handle;
    private bool _disposed;

    public SqliteRawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The SQLite connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));

        // One reference on each handle for the statement's life, so neither can be released under a raw call.
        var statementHeld = false;
        var connectionHeld = false;
        _statement.DangerousAddRef(ref statementHeld);
        _db.DangerousAddRef(ref connectionHeld);
        _handle = _statement.DangerousGetHandle();
        _connectionHandle = _db.DangerousGetHandle();
    }

    /// <summary>Binds a value to the 1-based parameter <paramref name="index"/>.</summary>
    public void Bind(int index, long value) => Check(SqliteNative.sqlite3_bind_int64(_handle, index, value));

    /// <summary>Binds text (encoded as UTF-8), or NULL.</summary>
    public void Bind(int index, string? value)
    {
        if (value is null)
        {
            Check(SqliteNative.sqlite3_bind_null(_handle, index));
            return;
        }

        var most = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (most <= StackTextBytes)
        {
            Span<byte> utf8 = stackalloc byte[most];
            BindText(index, utf8[..Encoding.UTF8.GetBytes(value, utf8)]);
            return;
        }

        var rented = ArrayPool<byte>.Shared.Rent(most);
        try
        {
            BindText(index, rented.AsSpan(0, Encoding.UTF8.GetBytes(value, rented)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Binds UTF-8 text (copied by SQLite).</summary>
    public void BindText(int index, ReadOnlySpan<byte> utf8)
    {
        // A pointer to an empty span may be null, which SQLite would bind as NULL: point at a byte that is there.
        byte empty = 0;
        fixed (byte* text = utf8)
        {
            Check(SqliteNative.sqlite3_bind_text(_handle, index, utf8.IsEmpty ? &empty : text, utf8.Length, SqliteNative.Transient));
        }
    }

    /// <summary>Binds a BLOB (copied by SQLite); an empty one stays a zero-length BLOB, never NULL.</summary>
    public void Bind(int index, ReadOnlySpan<byte> blob)
    {
        if (blob.IsEmpty)
        {
            Check(SqliteNative.sqlite3_bind_zeroblob(_handle, index, 0));
            return;
        }

        fixed (byte* bytes = blob)
        {
            Check(SqliteNative.sqlite3_bind_blob(_handle, index, bytes, blob.Length, SqliteNative.Transient));
        }
    }

    /// <summary>Runs a statement that returns no rows; returns the rows it changed.</summary>
    public int Execute()
    {
        try
        {
            var rc = SqliteNative.sqlite3_step(_handle);
            if (rc != raw.SQLITE_DONE)
            {
                Check(rc);
            }

            return SqliteNative.sqlite3_changes(_connectionHandle);
        }
        finally
        {
            // Its code repeats the step's, already checked.
            _ = SqliteNative.sqlite3_reset(_handle);
        }
    }

    /// <summary>Steps to the next row: true on a row, false at the end (then the statement is reset).</summary>
    public bool Read()
    {
        var rc = SqliteNative.sqlite3_step(_handle);
        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        _ = SqliteNative.sqlite3_reset(_handle);
        if (rc != raw.SQLITE_DONE)
        {
            Check(rc);
        }

        return false;
    }

    /// <summary>Ends a read before its last row.</summary>
    public void Reset() => _ = SqliteNative.sqlite3_reset(_handle);

    public long Int64(int column) => SqliteNative.sqlite3_column_int64(_handle, column);

    public bool IsNull(int column) => SqliteNative.sqlite3_column_type(_handle, column) == raw.SQLITE_NULL;

    public string? TextOrNull(int column) => IsNull(column) ? null : Text(column);

    public string Text(int column) => Encoding.UTF8.GetString(Utf8(column));

    /// <summary>The text or BLOB of a column as bytes, valid until the next step or reset.</summary>
    public ReadOnlySpan<byte> Utf8(int column)
    {
        // The pointer first, then the length (SQLite's documented order); NULL and empty values give no pointer.
        var bytes = SqliteNative.sqlite3_column_blob(_handle, column);
        return bytes is null ? default : new ReadOnlySpan<byte>(bytes, SqliteNative.sqlite3_column_bytes(_handle, column));
    }

    public byte[] Blob(int column) => Utf8(column).ToArray();

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        // The statement is finalized before the connection's reference is dropped: a connection is never closed under it.
        _disposed = true;
        _statement.DangerousRelease();
        _statement.Dispose();
        _db.DangerousRelease();
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}

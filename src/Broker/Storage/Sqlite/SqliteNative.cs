using System.Runtime.InteropServices;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The few SQLite C functions the per-event statements call (<see cref="SqliteRawStatement"/>), bound straight to the
/// <c>e_sqlite3</c> library that SQLitePCLRaw loads for Microsoft.Data.Sqlite. They take the raw statement and connection
/// pointers: SQLitePCLRaw's own entry points take its <see cref="SafeHandle"/>s, whose reference count is taken and
/// dropped around every call (about 2% of the broker's CPU at full load, two dozen calls per event), and convert strings
/// through a new array each time. The caller keeps the handles alive (it holds a reference on each) while it uses them.
/// </summary>
internal static unsafe partial class SqliteNative
{
    private const string Library = "e_sqlite3";

    /// <summary><c>SQLITE_TRANSIENT</c>: SQLite copies a bound value before the call returns.</summary>
    public static readonly nint Transient = -1;

    [LibraryImport(Library)]
    public static partial int sqlite3_bind_int64(nint statement, int index, long value);

    [LibraryImport(Library)]
    public static partial int sqlite3_bind_null(nint statement, int index);

    [LibraryImport(Library)]
    public static partial int sqlite3_bind_text(nint statement, int index, byte* utf8, int length, nint destructor);

    [LibraryImport(Library)]
    public static partial int sqlite3_bind_blob(nint statement, int index, byte* blob, int length, nint destructor);

    [LibraryImport(Library)]
    public static partial int sqlite3_bind_zeroblob(nint statement, int index, int length);

    [LibraryImport(Library)]
    public static partial int sqlite3_step(nint statement);

    [LibraryImport(Library)]
    public static partial int sqlite3_reset(nint statement);

    [LibraryImport(Library)]
    public static partial int sqlite3_changes(nint connection);

    [LibraryImport(Library)]
    public static partial long sqlite3_column_int64(nint statement, int column);

    [LibraryImport(Library)]
    public static partial int sqlite3_column_type(nint statement, int column);

    [LibraryImport(Library)]
    public static partial byte* sqlite3_column_blob(nint statement, int column);

    [LibraryImport(Library)]
    public static partial int sqlite3_column_bytes(nint statement, int column);
}

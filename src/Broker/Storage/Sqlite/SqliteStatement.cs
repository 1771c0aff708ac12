using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// One prepared, reused command. Values bind to the parameters in the order they were named, so a hot path sets a
/// few parameter values and steps the statement SQLite already compiled: no SQL text or command built per row.
/// </summary>
internal sealed class SqliteStatement : IDisposable
{
    private readonly SqliteCommand _command;
    private readonly SqliteParameter[] _parameters;

    public SqliteStatement(SqliteConnection connection, string sql, params string[] parameterNames)
    {
        _command = connection.CreateCommand();
        _command.CommandText = sql;
        _parameters = new SqliteParameter[parameterNames.Length];
        for (var i = 0; i < parameterNames.Length; i++)
        {
            // No SqliteType: the provider binds each value by its CLR type (long, string, byte[], DBNull).
            _parameters[i] = _command.Parameters.Add(new SqliteParameter(parameterNames[i], DBNull.Value));
        }

        _command.Prepare();
    }

    /// <summary>Runs the statement; returns the number of rows changed.</summary>
    public int Execute(params ReadOnlySpan<object?> values)
    {
        Bind(values);
        return _command.ExecuteNonQuery();
    }

    /// <summary>The first column of the first row, or null when there is no row (or it is NULL).</summary>
    public object? Scalar(params ReadOnlySpan<object?> values)
    {
        Bind(values);
        var value = _command.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    /// <summary>The first column of the first row as an integer, or null.</summary>
    public long? Int64(params ReadOnlySpan<object?> values) => Scalar(values) is { } value ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) : null;

    /// <summary>Opens a reader on the results; dispose it before the next statement changes the same rows.</summary>
    public SqliteDataReader Query(params ReadOnlySpan<object?> values)
    {
        Bind(values);
        return _command.ExecuteReader();
    }

    public void Dispose() => _command.Dispose();

    private void Bind(ReadOnlySpan<object?> values)
    {
        if (values.Length != _parameters.Length)
        {
            throw new InvalidOperationException($"'{_command.CommandText}' takes {_parameters.Length} values, got {values.Length}.");
        }

        for (var i = 0; i < values.Length; i++)
        {
            _parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }
}

using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>A logger provider that counts the client's "retrying a raise" entries (event id 1, RetryingRaise).</summary>
internal sealed class RetryCounter : ILoggerProvider
{
    private int count;

    public int Count => Volatile.Read(ref count);

    public ILogger CreateLogger(string categoryName) => new Counter(this);

    public void Dispose()
    {
    }

    private sealed class Counter(RetryCounter owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 1 && eventId.Name == "RetryingRaise")
            {
                Interlocked.Increment(ref owner.count);
            }
        }
    }
}

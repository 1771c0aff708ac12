using System.Net;
using System.Net.Sockets;

namespace HookBroker.Tests.Infrastructure;

/// <summary>Free loopback ports for the processes and containers tests start (containers use host networking: no port mapping).</summary>
internal static class FreePorts
{
    /// <summary>Distinct free ports: every listener is held until all are known, then released.</summary>
    public static int[] Reserve(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            listeners.ForEach(l => l.Dispose());
        }
    }
}

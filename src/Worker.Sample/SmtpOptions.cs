using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace HookBroker.Worker.Sample;

/// <summary>The SMTP server the welcome emails go through (configuration section <c>Smtp</c>).</summary>
internal sealed class SmtpOptions
{
    public const string Section = "Smtp";

    /// <summary>Host name or address. Required.</summary>
    public string Host { get; set; } = string.Empty;

    /// <summary>Default: 25.</summary>
    public int Port { get; set; } = 25;

    /// <summary>The sender, e.g. <c>HookBroker &lt;welcome@example.com&gt;</c>. Required.</summary>
    public string From { get; set; } = string.Empty;

    /// <summary>
    /// <c>None</c>, <c>StartTls</c> (required), <c>StartTlsWhenAvailable</c> or <c>SslOnConnect</c> (port 465).
    /// Default: <c>StartTlsWhenAvailable</c>; use <c>StartTls</c> or <c>SslOnConnect</c> for a server on another machine.
    /// </summary>
    public SecureSocketOptions Security { get; set; } = SecureSocketOptions.StartTlsWhenAvailable;

    /// <summary>Optional: authenticate with this user name and <see cref="Password"/>.</summary>
    public string? UserName { get; set; }

    /// <summary>Optional.</summary>
    public string? Password { get; set; }
}

/// <summary>Stops the start with a message naming the bad SMTP setting.</summary>
internal sealed class SmtpOptionsValidator : IValidateOptions<SmtpOptions>
{
    public ValidateOptionsResult Validate(string? name, SmtpOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Host))
        {
            failures.Add("Smtp:Host is required (e.g. Smtp__Host=smtp.example.com).");
        }

        if (options.Port is < 1 or > 65535)
        {
            failures.Add($"Smtp:Port must be 1-65535 (got {options.Port}).");
        }

        if (!MailboxAddress.TryParse(options.From, out _))
        {
            failures.Add($"Smtp:From must be an email address such as 'HookBroker <welcome@example.com>' (got '{options.From}').");
        }

        if (!Enum.IsDefined(options.Security))
        {
            failures.Add($"Smtp:Security must be None, StartTls, StartTlsWhenAvailable or SslOnConnect (got '{options.Security}').");
        }

        if (string.IsNullOrEmpty(options.UserName) != string.IsNullOrEmpty(options.Password))
        {
            failures.Add("Smtp:UserName and Smtp:Password go together: set both or neither.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
